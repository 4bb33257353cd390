"""The kernel runtime: students' notebooks are graded with Colab's Python and packages.

The pins come from Colab's own published list (googlecolab/backend-info at a724079, 2026-08-19, "Upgrade to Python
3.13": `pip-freeze.txt` and `os-info.txt`, copied into tests/runtimes/), the environment built from them is the one
pinned, values cross between the two Pythons unchanged, and the grader refuses to grade in anything else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gradekit.authoring import runtime_pins
from gradekit.authoring.runtime_pins import python_of_os_info, read_freeze, refresh
from gradekit.course.directory import REPO_ROOT
from gradekit.course.exits import UsageError
from gradekit.sandbox.runtime import (
    GRADER_IMPORT_MB,
    KernelRuntime,
    Pins,
    RuntimeMissing,
    course_pins,
    course_runtime,
    measure_imports,
)
from gradekit.untrusted import wire

FIXTURES = Path(__file__).parent / "runtimes"
FREEZE, OS_INFO = FIXTURES / "colab-pip-freeze.txt", FIXTURES / "colab-os-info.txt"
PINS = REPO_ROOT / "runtimes" / "colab.txt"
UNTRUSTED = REPO_ROOT / "gradekit" / "untrusted"


def _versions(lines: list[str]) -> dict[str, str]:
    """name -> version of `name==version` lines, names normalised as pip compares them."""
    return {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in lines}


def test_the_pins_are_colabs_published_runtime():
    pins = Pins.read(PINS)
    assert pins.python == python_of_os_info(OS_INFO.read_text()) == "3.13"
    colab, pinned = _versions(read_freeze(FREEZE.read_text()).constraints), _versions(pins.requirements)
    for root in runtime_pins.ROOTS:
        assert root.lower().replace("_", "-") in pinned, f"{root} is not pinned"
    # Every package Colab lists is at Colab's version; the others are what the registry's torch build brings.
    assert {name: version for name, version in pinned.items() if colab.get(name, version) != version} == {}
    assert pinned["torch"] == "2.11.0" and pinned["ipython"] == "7.34.0" and pinned["numpy"] == "2.1.3"
    assert set(pinned) - set(colab) <= {n for n in pinned if n.startswith(("nvidia-", "cuda-"))} | {"triton", "jedi"}


def test_a_freeze_becomes_constraints_as_the_registry_has_them():
    freeze = read_freeze(FREEZE.read_text())
    constraints = dict(c.split("==") for c in freeze.constraints)
    # Colab's torch comes from download.pytorch.org as 2.11.0+cpu: the registry's 2.11.0, said in a note.
    assert constraints["torch"] == "2.11.0" and "2.11.0+cpu" in freeze.notes["torch"]
    assert constraints["pandas"] == "2.2.3" and constraints["scikit-learn"] == "1.6.1"
    # The registry's torch brings its own CUDA packages: Colab's (other builds) would contradict them.
    assert not any(name.startswith("nvidia-") or name == "triton" for name in constraints)
    # Packages Colab builds from source or a VCS are left to the resolver, with a note.
    assert "google-colab" not in constraints and "google-colab" in freeze.notes
    assert read_freeze("# a comment\nnot a requirement line\n").constraints == []


def test_a_pins_file_says_its_python_and_pins_every_package(tmp_path):
    good = tmp_path / "hub.txt"
    good.write_text("# python: 3.12\nnumpy==2.0.2  # the image's\ntorch==2.5.1\n")
    pins = Pins.read(good)
    assert (pins.name, pins.python, pins.requirements) == ("hub", "3.12", ["numpy==2.0.2", "torch==2.5.1"])
    assert pins.version_of("Torch") == "2.5.1" and pins.version_of("pandas") is None
    for text, problem in [("numpy==2.0.2\n", "python"), ("# python: 3.12\nnumpy>=2\n", "not a pinned package"),
                          ("# python: 3.12\n", "no packages")]:
        good.write_text(text)
        with pytest.raises(ValueError, match=problem):
            Pins.read(good)


@pytest.mark.slow
def test_refresh_resolves_the_freeze_with_pips_resolver(tmp_path, monkeypatch):
    # A small root set: the registry's resolver, the freeze's versions, the Python of os-info.txt.
    monkeypatch.setattr(runtime_pins, "ROOTS", ("seaborn",))
    target = tmp_path / "runtimes" / "colab.txt"
    pins = refresh(FREEZE, target, os_info=OS_INFO, source="backend-info a724079")
    assert pins.python == "3.13"
    assert {"seaborn==0.13.2", "pandas==2.2.3", "numpy==2.1.3", "matplotlib==3.10.0"} <= set(pins.requirements)
    text = target.read_text()
    assert "# Source: backend-info a724079." in text and "do not edit by hand" in text
    assert refresh(FREEZE, target).python == "3.13"  # the Python kept from the file being refreshed


def test_the_course_names_its_runtime(tmp_path):
    assert course_pins(tmp_path).name == "colab"  # no course.toml: the kit's default, Colab's
    (tmp_path / "course.toml").write_text('[runtime]\npins = "grader"\n')
    assert course_pins(tmp_path) is None and course_runtime(tmp_path).name == "grader"
    assert course_runtime(tmp_path).python_version == ".".join(map(str, sys.version_info[:3]))
    for value, problem in [('"runtimes/hub.txt"', "no such file"), ("3", "a pins file"), ('""', "a pins file")]:
        (tmp_path / "course.toml").write_text(f"[runtime]\npins = {value}\n")
        with pytest.raises(UsageError, match=problem):
            course_pins(tmp_path)


def test_a_runtime_not_built_here_is_said_not_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADEKIT_RUNTIMES", str(tmp_path / "empty"))
    with pytest.raises(RuntimeMissing, match="gradekit runtime build"):
        course_runtime(REPO_ROOT)
    with pytest.raises(RuntimeMissing, match="gradekit runtime build"):
        KernelRuntime.of_key(("colab", "3.13", "000000000000"))


def test_the_built_runtime_is_the_pinned_one():
    pins, runtime = Pins.read(PINS), course_runtime(REPO_ROOT)
    assert runtime.name == "colab" and runtime.python_version.startswith(pins.python + ".")
    assert runtime.label == f"colab: Python {runtime.python_version}, torch {pins.version_of('torch')}"
    script = ("import json\nfrom importlib.metadata import distributions\n"
              "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in distributions()}))")
    installed = json.loads(subprocess.run([runtime.python, "-I", "-c", script], capture_output=True, text=True,
                                          check=True).stdout)
    assert installed == _versions(pins.requirements)  # exactly the pins: nothing missing, nothing else
    # The address space its imports map is measured, and is what the sandbox adds to a notebook's own share.
    assert runtime.import_mb > GRADER_IMPORT_MB


@pytest.mark.slow
def test_the_graders_own_imports_fit_the_figure_it_assumes():
    assert measure_imports(sys.executable)["import_mb"] <= GRADER_IMPORT_MB


# ---------------------------------------------------------------- values cross between the two Pythons

_SIDE = f"""
import json, sys
sys.path[:0] = [{str(UNTRUSTED)!r}, {str(FIXTURES)!r}]
import torch, wire, values
from bridge import Bridge
"""


def _in_runtime(script: str, stdin: str = "") -> str:
    runtime = course_runtime(REPO_ROOT)
    done = subprocess.run([runtime.python, "-c", _SIDE + script], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _same(sent, got, where: str) -> None:
    assert type(got) is type(sent), f"{where}: {type(got)} != {type(sent)}"
    if isinstance(sent, torch.Tensor):
        assert (got.dtype, got.shape, got.requires_grad) == (sent.dtype, sent.shape, sent.requires_grad), where
        torch.testing.assert_close(got, sent.detach(), rtol=0, atol=0, equal_nan=True, msg=where)
        if sent.grad is not None:
            torch.testing.assert_close(got.grad, sent.grad, rtol=0, atol=0, msg=where)
    elif isinstance(sent, np.ndarray | np.generic):
        assert got.dtype == sent.dtype and np.array_equal(got, sent, equal_nan=True), where
    elif isinstance(sent, list | tuple):
        assert len(got) == len(sent), where
        for index, (a, b) in enumerate(zip(sent, got, strict=True)):
            _same(a, b, f"{where}[{index}]")
    elif isinstance(sent, dict):
        assert list(got) == list(sent), where
        for key in sent:
            _same(sent[key], got[key], f"{where}.{key}")
    elif isinstance(sent, float) and sent != sent:
        assert got != got, where
    else:
        assert got == sent, where


def test_every_value_a_student_returns_crosses_to_the_judge_unchanged():
    sys.path.insert(0, str(FIXTURES))
    try:
        import values
    finally:
        sys.path.remove(str(FIXTURES))
    sent = json.loads(_in_runtime("print(json.dumps({k: wire.encode(v) for k, v in values.kernel_values().items()}))"))
    expected = values.kernel_values()
    assert list(sent) == list(expected)
    for name, data in sent.items():
        _same(expected[name], wire.decode(data, lambda spec: pytest.fail("no handle expected")), name)


def test_every_value_the_judge_sends_arrives_in_the_kernel_unchanged():
    sys.path.insert(0, str(FIXTURES))
    try:
        import values
    finally:
        sys.path.remove(str(FIXTURES))
    judge_values = values.judge_values()
    sent = {name: wire.encode_module(v) if isinstance(v, torch.nn.Module) else wire.encode(v)
            for name, v in judge_values.items()}
    # The kernel rebuilds each value (models through the bridge, as the judge's test models arrive), compares it
    # with its own, and runs the models: the outputs come back for the judge to compare with its own.
    report = json.loads(_in_runtime("""
sent, mine, bridge, found = json.load(sys.stdin), values.judge_values(), Bridge({}), {}
for name, data in sent.items():
    got = bridge._decode(data)
    want = mine[name]
    if isinstance(want, torch.nn.Module):
        same = [k for k in want.state_dict() if not torch.equal(got.state_dict()[k], want.state_dict()[k])]
        kinds = [type(m).__name__ for m in got.modules()] == [type(m).__name__ for m in want.modules()]
        x = mine["inputs"] if name == "model" else mine["inputs"][:, :2].float()
        found[name] = {"differ": same, "kinds": kinds, "out": wire.encode(got(x).detach())}
    else:
        found[name] = {"equal": bool(got.dtype == want.dtype and torch.equal(got, want))}
print(json.dumps(found))
""", json.dumps(sent)))
    for name in ("inputs", "targets", "classes", "probability"):
        assert report[name] == {"equal": True}, name
    for name, model, x in [("model", judge_values["model"], judge_values["inputs"]),
                           ("network", judge_values["network"], judge_values["inputs"][:, :2].float())]:
        assert report[name]["differ"] == [] and report[name]["kinds"], name
        torch.testing.assert_close(wire.decode(report[name]["out"], None), model(x).detach(), rtol=1e-6, atol=1e-7)


def test_the_kernel_side_code_runs_on_both_pythons():
    # What the kernel imports from gradekit (the bridge, the wire, the executor, the zygote, the corpus's student
    # side) and the lab's checks cell are compiled by the runtime's Python too.
    checks = REPO_ROOT / "gradekit" / "authoring" / "checks_cell.py"
    files = sorted(str(p) for p in UNTRUSTED.glob("*.py")) + [str(checks)]
    out = _in_runtime(f"for f in {files!r}:\n    compile(open(f).read(), f, 'exec')\n"
                      "import bridge, execute, zygote\nprint('ok', sys.version_info[:2])")
    assert out.startswith("ok (3, 13)")
