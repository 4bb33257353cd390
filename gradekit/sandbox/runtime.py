"""The kernel runtime: the Python environment the students' notebooks run in when graded.

Students check their answers on Colab; the grader should run them there too. A pins file (`runtimes/colab.txt`:
a Python version and every package, pinned) names such a runtime; `course.toml` `[runtime] pins` says which one
grades the course, or `"grader"` for the grader's own environment. `gradekit runtime build` makes the
environment once per machine, in a folder named by the pins' digest (`runtime_home()`), so that every course and
checkout with the same pins shares it. The sandbox kernel and its fork server run in it; the judge, nbgrader and
the rest of the grader stay in the grader's environment, and values cross between them as data
(`gradekit.untrusted.wire`), so the two need not share a torch version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

GRADER = "grader"  # [runtime] pins = "grader": the grader's own environment runs the kernels
# What a kernel maps at import, the lab's libraries and the kernel's own: a process's address-space limit is this
# plus `Limits.memory_mb`. A built runtime measures it (`measure_imports`: ~3.9 GB with Colab's CUDA build of torch);
# the grader's own environment (torch's CPU build), measured the same way, ~1.5 GB: tests/test_runtime.py holds it.
GRADER_IMPORT_MB = 1536
# The modules every lab and the kernel machinery import: what the footprint is measured on.
FOOTPRINT_MODULES = ("torch", "torch.nn.functional", "numpy", "pandas", "sklearn.datasets", "sklearn.linear_model",
                     "sklearn.metrics", "sklearn.model_selection", "sklearn.preprocessing", "matplotlib.pyplot",
                     "seaborn", "IPython", "ipykernel.kernelapp", "jupyter_client", "nbclient", "nbformat")
READY_STAMP = ".gradekit-runtime.json"  # written last by the build: what the environment is
_PYTHON_LINE = re.compile(r"^#\s*python:\s*(\d+\.\d+)\s*$", re.MULTILINE)


class RuntimeMissing(Exception):
    """The course's runtime is not built on this machine (or its Python is not installed)."""


@dataclass(frozen=True)
class Pins:
    """A pins file: the Python version (`# python: 3.13`) and `name==version` lines."""

    name: str  # the file's stem: "colab"
    path: Path
    python: str  # "3.13"
    requirements: list[str]
    digest: str  # of the python version and the requirements: names the built environment

    @classmethod
    def read(cls, path: Path) -> Pins:
        text = Path(path).read_text(encoding="utf-8")
        found = _PYTHON_LINE.search(text)
        if not found:
            raise ValueError(f"{path}: no `# python: 3.X` line")
        requirements = sorted({line.split("#", 1)[0].strip() for line in text.splitlines()} - {""}, key=str.lower)
        if not requirements:
            raise ValueError(f"{path}: no packages")
        for line in requirements:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+", line):
                raise ValueError(f"{path}: {line!r} is not a pinned package (name==version)")
        digest = hashlib.sha256("\n".join([found.group(1), *requirements]).encode()).hexdigest()[:12]
        return cls(Path(path).stem, Path(path), found.group(1), requirements, digest)

    def version_of(self, package: str) -> str | None:
        wanted = _normalise(package)
        for line in self.requirements:
            name, version = line.split("==", 1)
            if _normalise(name) == wanted:
                return version
        return None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_home() -> Path:
    """Where built runtimes live: $GRADEKIT_RUNTIMES, else the user's cache (shared by every checkout)."""
    if os.environ.get("GRADEKIT_RUNTIMES"):
        return Path(os.environ["GRADEKIT_RUNTIMES"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gradekit" / "runtimes"


def environment_path(pins: Pins) -> Path:
    return _environment_path(pins.name, pins.python, pins.digest)


def _environment_path(name: str, python: str, digest: str) -> Path:
    return runtime_home() / f"{name}-py{python}-{digest}"


@dataclass(frozen=True)
class KernelRuntime:
    """The environment the sandbox kernel runs in: its interpreter, and what to bind into the sandbox."""

    name: str  # "colab", or "grader"
    python: str  # the interpreter: <prefix>/bin/python
    prefix: str  # its sys.prefix (a venv) and sys.base_prefix (the Python installation)
    base_prefix: str
    python_version: str  # "3.13.0"
    torch_version: str  # "2.11.0", "" without torch
    digest: str = ""  # of its pins; "" for the grader's own environment
    import_mb: int = GRADER_IMPORT_MB  # address space the kernel's imports map (added to the per-process limit)

    @property
    def bin(self) -> str:
        return str(Path(self.prefix, "bin"))

    @property
    def label(self) -> str:
        """What the status, the report and the feedback say graded: "colab: Python 3.13.0, torch 2.11.0"."""
        torch = f", torch {self.torch_version}" if self.torch_version else ""
        return f"{self.name}: Python {self.python_version}{torch}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> KernelRuntime:
        return cls(**data)

    @classmethod
    def grader(cls) -> KernelRuntime:
        """The grader's own environment (the one running this code)."""
        try:
            from importlib.metadata import version

            torch_version = version("torch").split("+")[0]
        except Exception:  # noqa: BLE001 - no torch: the label says so by leaving it out
            torch_version = ""
        return cls(GRADER, str(Path(sys.prefix, "bin", "python")), sys.prefix, sys.base_prefix,
                   ".".join(map(str, sys.version_info[:3])), torch_version)

    @property
    def key(self) -> tuple[str, str, str] | None:
        """What another machine (a Dask worker) finds its own build of this runtime by; None: the grader's."""
        return None if not self.digest else (self.name, ".".join(self.python_version.split(".")[:2]), self.digest)

    @classmethod
    def built(cls, pins: Pins) -> KernelRuntime:
        """The environment of `pins` as built on this machine; RuntimeMissing if it is not."""
        return cls.of_key((pins.name, pins.python, pins.digest))

    @classmethod
    def of_key(cls, key: tuple[str, str, str] | None) -> KernelRuntime:
        """The runtime of `key` (`KernelRuntime.key`) as built on this machine; RuntimeMissing if it is not."""
        if key is None:
            return cls.grader()
        name, python, digest = key
        home = _environment_path(name, python, digest)
        try:
            data = json.loads((home / READY_STAMP).read_text())
        except (OSError, ValueError):
            raise RuntimeMissing(f"the kernel runtime {name!r} (Python {python}, pins {digest}) is not built on this "
                                 f"machine: run `gradekit runtime build` (or `make setup`)") from None
        return cls(name, str(home / "bin" / "python"), str(home), str(data["base_prefix"]),
                   str(data["python_version"]), str(data.get("torch_version", "")), digest, int(data["import_mb"]))


KIT_ROOT = Path(__file__).resolve().parents[2]  # the kit's checkout: its runtimes/ serve every course


def course_pins(root: Path) -> Pins | None:
    """The pins of the course's kernel runtime (`[runtime] pins`), None for the grader's own environment."""
    from gradekit.course.exits import UsageError
    from gradekit.course.settings import runtime_pins

    named = runtime_pins(root)
    if named == GRADER:
        return None
    for base in (Path(root), KIT_ROOT):
        path = base / named
        if path.is_file():
            try:
                return Pins.read(path)
            except (OSError, UnicodeDecodeError, ValueError) as error:
                raise UsageError(f"[runtime] pins: {error}") from None
    raise UsageError(f"[runtime] pins = {named!r}: no such file in {root} or in the kit ({KIT_ROOT})")


def course_runtime(root: Path) -> KernelRuntime:
    """The kernel runtime that grades the course in `root`, built on this machine."""
    pins = course_pins(root)
    return KernelRuntime.grader() if pins is None else KernelRuntime.built(pins)


def find_python(version: str) -> str:
    """An interpreter of Python `version` ("3.13") on this machine: on PATH, else pyenv's newest, else /usr."""
    import glob
    import shutil

    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}")
    candidates += sorted(found, key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parents[1].name)],
                         reverse=True)
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in candidates:  # a pyenv shim on PATH may name a version it does not run: ask each
        if candidate and os.access(candidate, os.X_OK) and _runs_version(candidate, version):
            return candidate
    raise RuntimeMissing(f"Python {version} is not installed on this machine (looked on PATH, in {pyenv_root}/versions "
                         f"and /usr): install it (e.g. `pyenv install {version}`), or grade in the grader's own "
                         f"environment with [runtime] pins = \"grader\" in course.toml")


def _runs_version(python: str, version: str) -> bool:
    try:
        done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def measure_imports(python: str) -> dict:
    """Import the labs' and the kernel's modules in `python`: what it is, and the address space they map (MB)."""
    script = (f"import sys, json, importlib\nfor m in {list(FOOTPRINT_MODULES)!r}:\n    importlib.import_module(m)\n"
              "import torch\n"
              "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmPeak:'))\n"
              "print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix,"
              " 'python_version': '.'.join(map(str, sys.version_info[:3])),"
              " 'torch_version': torch.__version__.split('+')[0], 'vm_peak_mb': peak // 1024}))")
    done = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"})
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeMissing(f"the runtime's libraries do not import: {tail}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    # The kernel's threads (ZMQ, the heartbeat, the judge's channel) map their stacks and malloc arenas beyond the
    # imports: a margin, so that a notebook's own `Limits.memory_mb` is what it gets.
    data["import_mb"] = data.pop("vm_peak_mb") + 512
    return data


def build(pins: Pins, say=print) -> KernelRuntime:
    """Build the environment of `pins` on this machine (once: a built one is kept), and say what it is.

    A venv of the pinned Python with exactly the pinned packages (no others: `--no-deps`), built beside its final
    place and renamed into it when its libraries import, so that a half-built environment is never used."""
    import fcntl
    import shutil
    import time

    try:
        runtime = KernelRuntime.built(pins)
        say(f"kernel runtime {runtime.label}: ready in {runtime.prefix}")
        return runtime
    except RuntimeMissing:
        pass
    target = environment_path(pins)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two set-ups at once: the second waits, then finds it built
        if (target / READY_STAMP).is_file():
            return KernelRuntime.built(pins)
        python = find_python(pins.python)
        started = time.monotonic()
        building = target.with_name(f".building-{target.name}")
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)  # a stamp-less leftover of an interrupted build
        say(f"building kernel runtime {pins.name!r} ({pins.path.name}: Python {pins.python}, "
            f"{len(pins.requirements)} packages) in {target} ...")
        subprocess.run([python, "-m", "venv", "--without-pip", str(building)], check=True)
        requirements = building / "requirements.txt"
        requirements.write_text("\n".join(pins.requirements) + "\n")
        # pip of the interpreter that was found installs into the venv (`--python`), so the venv needs no pip.
        subprocess.run([python, "-m", "pip", "--python", str(building / "bin" / "python"), "install", "-qq",
                        "--no-deps", "--disable-pip-version-check", "--no-warn-script-location", "-r",
                        str(requirements)], check=True)
        building.rename(target)
        data = measure_imports(str(target / "bin" / "python"))
        size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and not f.is_symlink())
        data.update(pins=pins.digest, seconds=round(time.monotonic() - started, 1), size_mb=size // 2**20)
        (target / READY_STAMP).write_text(json.dumps(data, indent=1))
    runtime = KernelRuntime.built(pins)
    say(f"kernel runtime {runtime.label}: built in {data['seconds']:.0f} s, {data['size_mb'] / 1024:.1f} GB, "
        f"imports map {runtime.import_mb} MB")
    return runtime


def write_kernelspec(runtime: KernelRuntime, data_dir: Path, name: str | None = None) -> str:
    """A Jupyter kernelspec that starts an IPython kernel in `runtime`, under `data_dir/kernels` (a client finds it
    with JUPYTER_PATH=data_dir); its name (default `gradekit-<runtime>`; "python3" stands in for the default kernel).
    For running a whole notebook outside the sandbox in the runtime the students have: the lectures' and labs' own
    checks, and plain nbgrader beside ours in the bench."""
    name = name or f"gradekit-{runtime.name}"
    folder = Path(data_dir) / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    # (debugpy, which ipykernel 6 loads, warns on every start that Python 3.13's frozen modules hide breakpoints.)
    spec = {"argv": [runtime.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
            "display_name": f"Python ({runtime.label})", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return name
