"""`gradekit runtime refresh`: the kernel runtime's pins file from Colab's published package list.

Colab publishes its runtime in googlecolab/backend-info: `pip-freeze.txt` (every package) and `os-info.txt` (the
Python version). The pins file keeps what the labs and the kernel import (`ROOTS`), and what those need, at Colab's
versions: pip's own resolver picks the set (`pip install --dry-run --report`, the freeze as constraints) for the
pinned Python, so the file is complete and installable. A JupyterHub course writes its image's pins the same way.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from gradekit.course.files import write_text
from gradekit.sandbox.runtime import Pins, find_python

# What the labs import (source/*/ and notebooks/), and the kernel machinery of gradekit.untrusted.
ROOTS = ("torch", "numpy", "pandas", "scikit-learn", "scipy", "matplotlib", "seaborn",
         "ipython", "ipykernel", "jupyter_client", "nbclient", "nbformat", "matplotlib-inline")
# The registry's torch is a CUDA build that brings its own CUDA packages: Colab's (for its GPU runtimes, or none)
# would contradict them.
FOLLOW_TORCH = re.compile(r"^(nvidia-|cuda-|triton$)")
_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==\s*(\S+)|@\s*(\S+))\s*$")


@dataclass
class Freeze:
    constraints: list[str]  # name==version, for pip's resolver
    notes: dict[str, str]  # package -> what was changed on the way, for the pins file's header


def read_freeze(text: str) -> Freeze:
    """`pip freeze` lines as constraints. A `name @ URL` line becomes `name==<version of the wheel>` (Colab takes
    torch from download.pytorch.org, which this machine's registries are not); its local label (`+cpu`) goes."""
    constraints: list[str] = []
    notes: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        found = _LINE.match(line)
        if not found:
            continue
        name, version, url = found.group(1), found.group(3), found.group(4)
        if FOLLOW_TORCH.match(name.lower()):
            continue
        if url is not None:
            wheel = unquote(url.rsplit("/", 1)[-1])
            parts = wheel.split("-")
            if not wheel.endswith(".whl") or len(parts) < 3:
                notes[name.lower()] = f"{name}: left to the resolver (Colab installs it from {url[:80]})"
                continue
            full = parts[1]
            version = full.split("+", 1)[0]
            if full != version:
                notes[name.lower()] = (f"{name}: Colab runs {full} from {url.split('/whl', 1)[0]}; pinned here as "
                                       f"{version}, the registry's build")
        constraints.append(f"{name}=={version}")
    return Freeze(constraints, notes)


def python_of_os_info(text: str) -> str | None:
    """"Python 3.13.15" in backend-info's os-info.txt -> "3.13"."""
    found = re.search(r"^Python (\d+)\.(\d+)", text, re.MULTILINE)
    return f"{found.group(1)}.{found.group(2)}" if found else None


def resolve(python: str, constraints: list[str]) -> list[tuple[str, str]]:
    """(name, version) of everything `ROOTS` installs under `constraints`, by pip's resolver for `python`."""
    with tempfile.TemporaryDirectory(prefix="gradekit-pins-") as scratch:
        constraints_file, report = Path(scratch, "constraints.txt"), Path(scratch, "report.json")
        constraints_file.write_text("\n".join(constraints) + "\n")
        done = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                               "--disable-pip-version-check", "--report", str(report), "-c", str(constraints_file),
                               *ROOTS], capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or ["no output"]
            raise ValueError(f"pip could not resolve the runtime's packages: {' '.join(errors)[:1000]}")
        installs = json.loads(report.read_text())["install"]
    return sorted(((i["metadata"]["name"], i["metadata"]["version"]) for i in installs), key=lambda p: p[0].lower())


def pins_text(name: str, python: str, resolved: list[tuple[str, str]], freeze: Freeze, source: str) -> str:
    in_freeze = {c.split("==", 1)[0].lower() for c in freeze.constraints}
    added = [n for n, _ in resolved if n.lower() not in in_freeze]
    header = [f"# The kernel runtime {name!r}: the Python and packages the students' notebooks are graded with.",
              "# Made by `gradekit runtime refresh`; refresh it when the source changes, do not edit by hand.",
              f"# Source: {source}.",
              "# What the labs and the kernel import, with what they need, at the versions of the source.",
              f"# python: {python}"]
    header += [f"# {freeze.notes[n.lower()]}" for n, _ in resolved if n.lower() in freeze.notes]
    if added:
        header += textwrap.wrap(f"Not in the source (the registry's packages need them): {', '.join(added)}",
                                width=116, initial_indent="# ", subsequent_indent="#   ", break_on_hyphens=False)
    return "\n".join(header + [f"{n}=={v}" for n, v in resolved]) + "\n"


def refresh(freeze_path: Path, pins_path: Path, python: str | None = None, os_info: Path | None = None,
            source: str | None = None) -> Pins:
    """Write `pins_path` from a `pip freeze` file (and the Python version: `python`, else `os_info`'s, else the
    current pins'); the new pins."""
    freeze = read_freeze(Path(freeze_path).read_text(encoding="utf-8"))
    if not freeze.constraints:
        raise ValueError(f"{freeze_path}: no `name==version` lines: not a pip freeze")
    if python is None and os_info is not None:
        python = python_of_os_info(Path(os_info).read_text(encoding="utf-8"))
    if python is None and Path(pins_path).is_file():
        python = Pins.read(pins_path).python
    if python is None or not re.fullmatch(r"\d+\.\d+", python):
        raise ValueError("which Python? give --python 3.X or --os-info os-info.txt")
    resolved = resolve(find_python(python), freeze.constraints)
    text = pins_text(Path(pins_path).stem, python, resolved, freeze, source or Path(freeze_path).name)
    Path(pins_path).parent.mkdir(parents=True, exist_ok=True)
    write_text(Path(pins_path), text)
    return Pins.read(pins_path)
