"""The wheat/chaff corpora: every lab's hidden tests accept correct answers and reject wrong ones.

The harness (gradekit.proof.corpus) grades every corpus entry in fast mode (the student's side forked per entry
in the kernel runtime, the judge in the grader) once per session; a sample per lab is graded again through
plain `nbgrader autograde` and must agree.
A synthetic one-function assignment proves the harness reports a surviving chaff and a failing
wheat as failures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import build_course

from gradekit.authoring.notebooks import answer, checks_cell, markdown, readonly, write_notebook
from gradekit.authoring.notebooks import tests as graded_tests_cell
from gradekit.commands import corpus as corpus_command
from gradekit.course.directory import REPO_ROOT
from gradekit.proof import corpus
from gradekit.sandbox.runtime import course_runtime

LABS = sorted(p.parent.name for p in (REPO_ROOT / "source").glob("*/*.ipynb"))

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("corpus")]


@pytest.fixture(scope="module")
def lab_reports() -> dict[str, corpus.LabReport]:
    """Fast-mode results for every lab, graded together on two workers (once per module)."""
    labs = [corpus.find_lab(name) for name in LABS]
    return {report.lab: report for report in corpus.grade_labs(labs, workers=2)}


def failures(report: corpus.LabReport, kind: str) -> list[str]:
    return [f"{r.entry.key}: {r.verdict}: {'; '.join(r.problems)}"
            for r in report.entries if r.entry.kind == kind and not r.ok]


@pytest.mark.parametrize("lab", LABS)
def test_instructor_solution_and_coverage(lab_reports, lab):
    assert lab_reports[lab].coverage_errors == []


@pytest.mark.parametrize("lab", LABS)
def test_every_wheat_gets_full_marks(lab_reports, lab):
    assert failures(lab_reports[lab], "wheat") == []


@pytest.mark.parametrize("lab", LABS)
def test_every_chaff_is_killed_with_a_good_message(lab_reports, lab):
    assert failures(lab_reports[lab], "chaff") == []


@pytest.mark.parametrize("lab", LABS)
def test_the_visible_checks_catch_nine_chaffs_in_ten_and_pass_every_wheat(lab_reports, lab):
    """The student's view: a visible check of its own test cell catches at least 90% of a lab's chaffs, every
    chaff it misses says why in its docstring ("Visibly silent"), and every wheat passes every visible check."""
    report = lab_reports[lab]
    caught, measured = report.visible("chaff")
    assert measured == report.count("chaff")[1] and caught >= 0.9 * measured, corpus.format_lab(report)
    assert report.visible("wheat") == (report.count("wheat")[1],) * 2, corpus.format_lab(report)
    unexplained = [r.entry.key for r in report.entries if r.entry.kind == "chaff"
                   and r.seen_by_the_student() is False and "Visibly silent" not in r.entry.path.read_text()]
    assert unexplained == []


def test_a_wheat_in_colabs_newer_python_is_graded_through_grade_with_full_marks(lab_reports):
    """itertools.batched minibatches and an f-string reusing its quotes (Python 3.12+, what Colab runs): full marks
    in fast mode, and the entry is in the sample that `gradekit grade` grades again (the fidelity test below)."""
    report = lab_reports["lab2"]
    entry = next(r for r in report.entries if r.entry.path.name == "wheat_py313_batched_fstring.py")
    assert entry.entry.full and entry.verdict == "wheat ok", entry.problems
    assert entry in corpus.fidelity_sample(report)


@pytest.mark.parametrize("lab", LABS)
def test_fast_mode_matches_nbgrader_autograde(lab_reports, lab, tmp_path):
    report = lab_reports[lab]
    assert corpus.fidelity_sample(report), f"{lab} has no corpus to sample"
    course = build_course(tmp_path / "course", [lab])
    corpus.check_fidelity(course, corpus.find_lab(lab), report)
    assert report.fidelity == []


# --- the harness itself, on a tiny synthetic assignment ----------------------------------------

IMPORTS = """
import os

import torch

SHOW_PLOTS = not os.environ.get("NBGRADER_EXECUTION")
torch.manual_seed(0)
"""

DOUBLE_SOLUTION = '''
def double(x: torch.Tensor) -> torch.Tensor:
    """2 * x as a new tensor of the shape of x (x must not be modified)."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
'''

DOUBLE_TESTS = """
check_tensor("double", call("double", double, torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]))
### BEGIN HIDDEN TESTS
g = make_generator(7)
for n in (1, 7, 64):
    x = torch.randn(n, generator=g, dtype=torch.float64)
    check_tensor("double", call("double", double, x), x + x, hint="multiply by two.")
### END HIDDEN TESTS
"""

# A second function whose test uses a bare assert (what the harness must flag).
HALF_SOLUTION = '''
def half(x: torch.Tensor) -> torch.Tensor:
    """x / 2."""
    ### BEGIN SOLUTION
    return x / 2
    ### END SOLUTION
'''

HALF_TESTS = """
### BEGIN HIDDEN TESTS
assert torch.equal(half(torch.tensor([2.0])), torch.tensor([1.0]))
### END HIDDEN TESTS
"""

ENTRIES = {
    "double/wheat_add.py": '"""Wheat: x + x."""\n\ndef double(x):\n    return x + x\n',
    "double/wheat_mul.py": '"""Wheat: torch.mul."""\nimport torch\n\ndef double(x):\n    return torch.mul(x, 2)\n',
    "double/wheat_wrong.py": '"""Wheat that is really wrong: 3 * x."""\n\ndef double(x):\n    return 3 * x\n',
    "double/chaff_triple.py": '"""Chaff: 3 * x."""\n\ndef double(x):\n    return 3 * x\n',
    "double/chaff_in_place.py": '"""Chaff: doubles x in place."""\n\ndef double(x):\n    return x.mul_(2)\n',
    "double/chaff_right.py": '"""Chaff that is really right: 2.0 * x."""\n\ndef double(x):\n    return 2.0 * x\n',
    "double/chaff_stderr.py": ('"""Chaff that is really right: prints to stderr."""\nimport sys\n\n'
                               'def double(x):\n    print("debug", file=sys.stderr)\n    return 2 * x\n'),
    "double/chaff_syntax.py": '"""Chaff: missing colon."""\n\ndef double(x)\n    return 2 * x\n',
    "half/chaff_double.py": '"""Chaff: x * 2."""\n\ndef half(x):\n    return x * 2\n',
}


def write_tiny_lab(root: Path) -> corpus.Lab:
    cells = [markdown("# Tiny lab"), readonly("imports", IMPORTS), checks_cell(),
             answer("double", DOUBLE_SOLUTION), graded_tests_cell("test_double", 2, DOUBLE_TESTS),
             answer("half", HALF_SOLUTION), graded_tests_cell("test_half", 1, HALF_TESTS)]
    write_notebook(root / "source" / "tiny" / "tiny.ipynb", cells, title="tiny")
    for name, text in ENTRIES.items():
        path = root / "corpus" / "tiny" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return corpus.find_lab("tiny", root / "source", root / "corpus")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[corpus.Lab, corpus.LabReport]:
    lab = write_tiny_lab(tmp_path_factory.mktemp("tiny"))
    (report,) = corpus.grade_labs([lab], workers=2)
    return lab, report


def verdicts(report: corpus.LabReport) -> dict[str, str]:
    return {f"{r.entry.grade_id}/{r.entry.path.name}": r.verdict for r in report.entries}


def test_harness_reports_surviving_chaffs_and_failing_wheats(tiny):
    _, report = tiny
    assert verdicts(report) == {
        "double/chaff_in_place.py": "chaff killed",
        "double/chaff_right.py": "SURVIVED",
        "double/chaff_stderr.py": "SURVIVED",  # right values: printing to stderr is not a mistake for the judge
        "double/chaff_syntax.py": "chaff killed",
        "double/chaff_triple.py": "chaff killed",
        "double/wheat_add.py": "wheat ok",
        "double/wheat_mul.py": "wheat ok",
        "double/wheat_wrong.py": "WHEAT FAILED",
        "half/chaff_double.py": "BAD MESSAGE",  # bare assert in test_half
    }
    assert not report.ok
    assert report.count("chaff") == (3, 6) and report.count("wheat") == (2, 3)
    problems = {r.entry.path.name: " ".join(r.problems) for r in report.entries}
    assert "bare AssertionError" in problems["chaff_double.py"]
    assert "wrong value" in problems["wheat_wrong.py"] and "test_double: 0/2" in problems["wheat_wrong.py"]
    assert "full marks on test_double" in problems["chaff_right.py"]
    # double has 3 wheats and 5 chaffs; half has none of its wheats.
    assert report.coverage_errors == ["half: 0 wheats and 1 chaffs (at least 3 and 5 required)"]


def test_the_students_view_counts_what_the_visible_checks_catch(tiny):
    """Each entry also through the visible checks alone (hidden tests removed, in the student's process)."""
    _, report = tiny
    seen = {f"{r.entry.grade_id}/{r.entry.path.name}": r.seen_by_the_student() for r in report.entries}
    assert seen == {
        "double/chaff_in_place.py": True,  # `call` sees the argument change
        "double/chaff_right.py": False,
        "double/chaff_stderr.py": False,
        "double/chaff_syntax.py": True,  # double is not defined: its test cell fails
        "double/chaff_triple.py": True,
        "double/wheat_add.py": True,
        "double/wheat_mul.py": True,
        "double/wheat_wrong.py": False,  # 3 * x fails the visible check too
        "half/chaff_double.py": False,  # test_half has no visible check
    }
    assert report.visible("chaff") == (3, 6) and report.visible("wheat") == (2, 3)
    table = corpus.format_lab(report)
    assert "VISIBLY SILENT: half/chaff_double" in table and "VISIBLY FAILING WHEAT: double/wheat_wrong" in table
    assert "visible checks catch 3/6 (50%) of the chaffs, pass 2/3 (67%) of the wheats" in table


def test_table_json_and_exit_code(tiny, tmp_path, capsys, monkeypatch):
    lab, report = tiny
    monkeypatch.setattr(corpus_command, "grade_labs", lambda labs, workers, timeout: [report])
    table = corpus.format_lab(report)
    assert "SURVIVED" in table and "WHEAT FAILED" in table and "chaffs killed 3/6 (50%)" in table
    args = argparse.Namespace(labs=["tiny"], workers=1, timeout=30.0, no_fidelity=True,
                              json=tmp_path / "out.json", source=lab.notebook_path.parent.parent,
                              corpus=lab.corpus_dir.parent)
    assert corpus_command.main(args) == 1
    assert "overall: chaffs killed 3/6 (50%), wheats passing 2/3 (67%)" in capsys.readouterr().out
    assert '"verdict": "SURVIVED"' in args.json.read_text()


def test_message_check_rejects_leaks_and_anonymous_messages():
    hidden = corpus.hidden_test_lines(DOUBLE_TESTS)
    leak = corpus.CellResult("test_double", 0, 2, "CheckFailed",
                             "double: failed at check_tensor(\"double\", call(\"double\", double, x), x + x, "
                             "hint=\"multiply by two.\")")
    assert any("hidden test code" in p for p in corpus.message_problems(leak, {"double"}, hidden))
    anonymous = corpus.CellResult("test_double", 0, 2, "ValueError", "shapes do not match")
    assert any("does not name" in p for p in corpus.message_problems(anonymous, {"double"}, hidden))
    # a hidden line the student can see anyway (here: in the visible checks) is no leak
    visible_checks = 'print(1)\ncheck_tensor("double", call("double", double, x), x + x, hint="multiply by two.")'
    shown = corpus.hidden_test_lines(DOUBLE_TESTS, visible=visible_checks)
    assert shown == [line for line in hidden if "multiply by two" not in line] and len(shown) < len(hidden)
    good = corpus.CellResult("test_double", 0, 2, "CheckFailed", "double: returned shape (3,); expected (2,).")
    assert corpus.message_problems(good, {"double"}, hidden) == []


def fork_in_fresh_worker(cells: list[dict], timeout: float) -> dict:
    """fork_and_grade in a new process set up like a worker (the judge's torch on one thread, its own student's
    server in the kernel runtime), so that pytest's threads and filters play no part."""
    script = ("import json, sys\nfrom gradekit.proof import corpus\ncorpus._import_heavy_modules()\n"
              "cells, timeout = json.loads(sys.stdin.read())\n"
              "print(json.dumps(corpus.fork_and_grade(cells, timeout)))")
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps([cells, timeout]),
                          capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout)


def test_timeout_kills_the_entry():
    cells = [{"source": "while True:\n    pass", "grade_id": "loop", "points": 0.0, "is_test": False,
              "is_answer": True},
             {"source": "pass", "grade_id": "test_loop", "points": 1.0, "is_test": True, "is_answer": False}]
    result = fork_in_fresh_worker(cells, timeout=1.0)
    assert result["crash"].startswith("timeout") and result["seconds"] < 30


def test_fork_after_importing_torch_runs_torch_in_the_child():
    cells = [{"source": "import torch\nx = torch.randn(300, 300, dtype=torch.float64, requires_grad=True)\n"
                        "(grad,) = torch.autograd.grad((x @ x.T).sum(), x)",
              "grade_id": "", "points": 0.0, "is_test": False, "is_answer": False},
             {"source": "assert torch.get_num_threads() == 1, 'threads'\nassert torch.isfinite(grad).all(), 'grad'",
              "grade_id": "test_torch", "points": 1.0, "is_test": True, "is_answer": False},
             {"source": "import sys\nprint('noise', file=sys.stderr)",
              "grade_id": "test_stderr", "points": 2.0, "is_test": True, "is_answer": False},
             {"source": "0.5", "grade_id": "test_partial", "points": 2.0, "is_test": True, "is_answer": False}]
    result = fork_in_fresh_worker(cells, timeout=120.0)
    points = {c["grade_id"]: c["points"] for c in result["cells"]}
    # The judge decides: stderr cannot zero a test cell, a displayed value cannot earn partial credit.
    assert points == {"test_torch": 1.0, "test_stderr": 2.0, "test_partial": 2.0}, result


def runtime_version() -> tuple[int, int]:
    return tuple(int(part) for part in course_runtime(REPO_ROOT).python_version.split(".")[:2])


def test_the_students_side_runs_in_the_kernel_runtime():
    """The student's process is the runtime's Python (Colab's), not the grader's: what it records is that version,
    and a feature of Python 3.12+ works there (the judge, in the grader's Python, checks the values it gets)."""
    version = runtime_version()
    if version < (3, 12):
        pytest.skip(f"the course runtime is Python {version}: no itertools.batched")
    cells = [{"source": "import itertools, sys\nVERSION = list(sys.version_info[:2])\n"
                        "BATCHES = [list(b) for b in itertools.batched(range(5), 2)]",
              "grade_id": "record", "points": 0.0, "is_test": False, "is_answer": True},
             {"source": f"assert tuple(VERSION) == {version!r}, f'ran on {{VERSION}}'\n"
                        "assert BATCHES == [[0, 1], [2, 3], [4]], BATCHES",
              "grade_id": "test_record", "points": 1.0, "is_test": True, "is_answer": False}]
    result = fork_in_fresh_worker(cells, timeout=60.0)
    assert [(c["grade_id"], c["points"], c["evalue"], c["visible_error"]) for c in result["cells"]] == [
        ("test_record", 1.0, "", "")], result


def test_fidelity_on_the_tiny_lab_matches_fast_mode(tiny, tmp_path):
    lab, report = tiny
    corpus.check_fidelity(corpus.scratch_course(tmp_path / "course", lab), lab, report)
    # sample: first wheat (wheat_add) and first chaff (chaff_in_place): same points, good message.
    assert report.fidelity == [], report.fidelity
    assert len(report.fidelity_notes) == 1


def test_cells_with_magics_are_graded_in_a_kernel():
    cells = [{"source": "%config InlineBackend.figure_format = 'png'\nimport os", "grade_id": "",
              "points": 0.0, "is_test": False, "is_answer": False},
             {"source": "assert os.environ['NBGRADER_EXECUTION'] == 'autograde'", "grade_id": "test_env",
              "points": 1.0, "is_test": True, "is_answer": False},
             {"source": "raise ValueError('f: no')", "grade_id": "test_error", "points": 2.0, "is_test": True,
              "is_answer": False},
             {"source": f"import sys\nassert sys.version_info[:2] == {runtime_version()!r}, sys.version",
              "grade_id": "test_runtime", "points": 1.0, "is_test": True, "is_answer": False}]
    assert any(corpus.uses_magics(c["source"]) for c in cells)
    result = corpus.kernel_grade(cells, timeout=60)  # the kernel is the course runtime's
    assert [(c["grade_id"], c["points"], c["ename"]) for c in result["cells"]] == [
        ("test_env", 1.0, ""), ("test_error", 0.0, "ValueError"), ("test_runtime", 1.0, "")], result


def test_a_mistake_costs_once_through_the_judge():
    """Wrong compute_gradients: its own test loses the points, gradient_descent_step (which uses it) keeps them."""
    lab = corpus.find_lab("lab1")
    cells = [asdict(c) for c in corpus.code_cells(lab.notebook())]
    index = corpus.answer_index([corpus.Cell(**c) for c in cells], "compute_gradients")
    wrong = cells[index]["source"].replace("y_pred - y_true", "y_true - y_pred")  # the classic sign slip
    assert wrong != cells[index]["source"]
    cells[index]["source"] = wrong
    result = fork_in_fresh_worker(cells, timeout=120.0)
    points = {c["grade_id"]: (c["points"], c["max_points"]) for c in result["cells"]}
    assert points["test_compute_gradients"][0] == 0
    for grade_id in ("test_gradient_descent_step", "test_compute_gradients_v2", "test_standardize"):
        assert points[grade_id][0] == points[grade_id][1], (grade_id, result)
