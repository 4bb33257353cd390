"""Grading runs an instructor can rely on: bad arguments, a course in use, interrupts, regrades, repairs.

Every user error is one line with exit code 2 and writes nothing; an interrupt stops within seconds and
leaves each student's gradebook record as it was or whole; a regrade touches only its students and
keeps hand grading; merged or moved answer cells keep their marks.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, SOLUTION, TESTS, submit_source

from gradekit.authoring import notebooks as authoring
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.exits import EXIT_ATTENTION, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from gradekit.course.lock import LOCK_NAME
from gradekit.sandbox.bwrap import bwrap_path

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("grade_runs")]
RIGHT = "def double(x):\n    return x * 2\n"
SLOW = "import time\ntime.sleep(60)\n\ndef double(x):\n    return x * 2\n"


def build_course(root: Path, imports: str = "import os\n\nimport torch") -> Course:
    """The tiny lab plus a written answer graded by hand (2 points)."""
    root.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    cells = [authoring.markdown("# Double"),
             authoring.readonly("imports", f"{imports}\n\ntorch.manual_seed(0)"),
             authoring.checks_cell(), authoring.answer("double", SOLUTION), authoring.tests("test_double", 3, TESTS),
             authoring.written("why_double", 2, "Because two is the factor.")]
    authoring.write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", cells, "tiny")
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    course = Course(root)
    course.nbgrader("generate_assignment", LAB, "--force")
    return course


def run_cli(course: Course, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradekit", "grade", LAB, "--course", str(course.root), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != LOCK_NAME):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def scores(course: Course) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gb:
        return {s.student.id: s.score for s in gb.assignment_submissions(LAB)}


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    course = build_course(tmp_path_factory.mktemp("runs") / "course")
    submit_source(course, "ann", RIGHT)
    submit_source(course, "bob", "def double(x):\n    return x + 1\n")
    return course


@pytest.mark.parametrize(("args", "says"), [
    (["--workers", "0"], "--workers 0"),
    (["--timeout", "-1"], "--timeout -1"),
    (["--memory", "300"], "--memory 300"),
    (["--student", "nobody"], "no submission of tiny"),
])
def test_bad_arguments_are_one_line_exit_2_and_write_nothing(course, args, says):
    before = tree_digest(course.root)
    done = run_cli(course, *args)
    assert done.returncode == EXIT_USAGE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr
    assert tree_digest(course.root) == before


def test_unknown_lab_and_unreleased_course(course, tmp_path):
    done = subprocess.run([sys.executable, "-m", "gradekit", "grade", "lab9", "--course", str(course.root)],
                          capture_output=True, text=True)
    assert done.returncode == EXIT_USAGE and "unknown lab 'lab9'" in done.stderr
    bare = tmp_path / "bare"
    shutil.copytree(course.root / "source", bare / "source")
    done = run_cli(Course(bare))
    assert done.returncode == EXIT_USAGE and "not released" in done.stderr
    assert sorted(p.name for p in bare.iterdir()) == ["source"]


def test_a_second_run_on_the_same_course_is_refused(course):
    before = tree_digest(course.root)
    with open(course.root / LOCK_NAME, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = run_cli(course)
    assert done.returncode == EXIT_USAGE and "another grading run" in done.stderr
    assert tree_digest(course.root) == before


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
def test_preflight_stops_before_any_grade_when_the_imports_cannot_start(tmp_path):
    # The lab imports a module of the grader's environment that Colab's runtime does not have.
    course = build_course(tmp_path / "course", imports="import os\n\nimport rich\nimport torch")
    submit_source(course, "ann", RIGHT)
    before = tree_digest(course.root)
    done = run_cli(course)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "pre-flight failed" in done.stderr and "no grade was written" in done.stderr
    assert "imports failed in the sandbox: rich" in done.stderr and "lacks a module the lab imports" in done.stderr
    assert tree_digest(course.root) == before


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
def test_grade_then_regrade_one_student_keeps_hand_grading(course):
    from nbgrader.api import Gradebook

    done = run_cli(course)
    assert done.returncode == EXIT_OK, done.stderr
    assert scores(course) == {"ann": 3.0, "bob": 0.0}
    assert "executing: 100%" in done.stderr and "2/2" in done.stderr  # the bar ends at the class size
    with Gradebook(course.db_url) as gb:  # the instructor grades the written answers by hand
        for student in ("ann", "bob"):
            mark = gb.find_grade("why_double", NOTEBOOK, LAB, student)
            mark.manual_score, mark.needs_manual_grade = 2.0, False
        gb.db.commit()
    bob_page = course.autograded / "bob" / LAB / f"{NOTEBOOK}.ipynb"
    bob_before = bob_page.stat().st_mtime_ns
    submit_source(course, "ann", "def double(x):\n    return x + x\n")  # a resubmission, same written answer
    done = run_cli(course, "--student", "ann")
    assert done.returncode == EXIT_OK, done.stderr
    assert scores(course) == {"ann": 5.0, "bob": 2.0}
    assert bob_page.stat().st_mtime_ns == bob_before
    with Gradebook(course.db_url) as gb:
        mark = gb.find_grade("why_double", NOTEBOOK, LAB, "ann")
        assert (mark.manual_score, mark.needs_manual_grade) == (2.0, False)


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
@pytest.mark.parametrize("phase", ["executing", "scoring"])
def test_an_interrupt_stops_within_seconds_and_a_rerun_finishes(tmp_path, phase):
    course = build_course(tmp_path / "course")
    for student in ("a1", "a2", "a3", "a4"):
        submit_source(course, student, RIGHT if phase == "scoring" else SLOW)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen([sys.executable, "-m", "gradekit", "grade", LAB, "--course", str(course.root),
                                "--workers", "2"], stderr=subprocess.PIPE, env=env)
    output = bytearray()
    reader = threading.Thread(target=lambda: [output.extend(chunk) for chunk in iter(
        lambda: os.read(process.stderr.fileno(), 4096), b"")], daemon=True)
    reader.start()
    # Executing: the bars are up; a few seconds later every notebook is staged and sleeping in its sandbox
    # (each sleeps 60 s). Scoring: its bar has started.
    marker = b"executing" if phase == "executing" else b"scoring"
    deadline = time.monotonic() + 240
    while marker not in output:
        assert process.poll() is None and time.monotonic() < deadline, output.decode(errors="replace")[-2000:]
        time.sleep(0.05)
    if phase == "executing":
        time.sleep(8)
        assert process.poll() is None, output.decode(errors="replace")[-2000:]
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == EXIT_INTERRUPTED, output.decode(errors="replace")[-2000:]
    assert time.monotonic() - interrupted < 15
    time.sleep(1)
    leftovers = subprocess.run(["pgrep", "-f", str(course.root)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], "processes of the interrupted run are still running"
    partial = scores(course)
    assert all(score in (0.0, 3.0) for score in partial.values()), partial  # each record whole or absent
    if phase == "executing":
        assert partial == {}  # nothing is scored before every notebook ran
        for student in ("a1", "a2", "a3", "a4"):
            submit_source(course, student, RIGHT)
    done = run_cli(course)
    assert done.returncode == EXIT_OK, done.stderr
    assert scores(course) == {"a1": 3.0, "a2": 3.0, "a3": 3.0, "a4": 3.0}


@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
def test_an_invalid_student_is_attention_not_failure(tmp_path):
    course = build_course(tmp_path / "course")
    submit_source(course, "ok", RIGHT)
    broken = course.submitted / "broken" / LAB / f"{NOTEBOOK}.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"cells": [')  # truncated upload
    done = run_cli(course)
    assert done.returncode == EXIT_ATTENTION, done.stderr
    assert "2/2" in done.stderr and "1 graded, 1 invalid" in done.stderr


# ---------------------------------------------------------------- repair: merged and moved answers


RELEASE_LAB1 = REPO_ROOT / "release" / "lab1" / "lab1_logistic_regression.ipynb"
SOURCE_LAB1 = REPO_ROOT / "source" / "lab1" / "lab1_logistic_regression.ipynb"


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _answers() -> dict[str, str]:
    source = nbformat.read(SOURCE_LAB1, as_version=4)
    return {_grade_id(c): c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("solution")}


def test_merged_answer_cells_keep_their_definitions(tmp_path):
    from gradekit.staging.repair import prepare_submission

    release = nbformat.read(RELEASE_LAB1, as_version=4)
    answers = _answers()
    nb = nbformat.from_dict(release)
    cells = []
    for cell in nb.cells:  # linear_regression's answer pasted into sigmoid's cell, its own cell deleted
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id == "linear_regression":
            continue
        if grade_id == "sigmoid":
            cell.source = answers["linear_regression"] + "\n\n\n" + answers["sigmoid"]
        cells.append(cell)
    nb.cells = cells
    path = tmp_path / "merged.ipynb"
    nbformat.write(nb, path)
    prepared = prepare_submission(path, release)
    repaired = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in prepared.notebook.cells}
    assert "NotImplementedError" not in repaired["linear_regression"]
    assert "def linear_regression" in repaired["sigmoid"]
    assert any("merged into another cell" in note for note in prepared.repairs), prepared.repairs


def test_a_deleted_answer_still_gets_its_stub(tmp_path):
    from gradekit.staging.repair import prepare_submission

    release = nbformat.read(RELEASE_LAB1, as_version=4)
    nb = nbformat.from_dict(release)
    nb.cells = [c for c in nb.cells if _grade_id(c) != "sigmoid"]
    path = tmp_path / "deleted.ipynb"
    nbformat.write(nb, path)
    prepared = prepare_submission(path, release)
    repaired = {_grade_id(c): c.source for c in prepared.notebook.cells}
    assert "NotImplementedError" in repaired["sigmoid"]
    assert any("'sigmoid' was deleted: re-inserted its stub" in note for note in prepared.repairs)


def test_a_moved_answer_is_put_back_before_its_test(tmp_path):
    from gradekit.staging.repair import prepare_submission

    release = nbformat.read(RELEASE_LAB1, as_version=4)
    nb = nbformat.from_dict(release)
    moved = next(c for c in nb.cells if _grade_id(c) == "sigmoid")
    moved.source = _answers()["sigmoid"]
    nb.cells = [c for c in nb.cells if c is not moved] + [moved]  # pasted at the very end
    path = tmp_path / "moved.ipynb"
    nbformat.write(nb, path)
    order = [_grade_id(c) for c in prepare_submission(path, release).notebook.cells]
    assert order.index("sigmoid") < order.index("test_sigmoid")


def _marks_through_the_judge(nb: nbformat.NotebookNode) -> dict[str, tuple[float, float]]:
    """Points per test cell of a repaired notebook, graded as the grader does (test and locked cells
    restored from the instructor's source, as nbgrader's OverwriteCells does; the judge decides)."""
    import json as json_module
    from dataclasses import asdict

    from gradekit.proof import corpus

    source = {_grade_id(c): c.source for c in nbformat.read(SOURCE_LAB1, as_version=4).cells if _grade_id(c)}
    cells = [asdict(c) for c in corpus.code_cells(nb)]
    for cell in cells:
        if cell["is_test"] or cell["is_locked"]:
            cell["source"] = source[cell["grade_id"]]
    script = ("import json, sys\nfrom gradekit.proof import corpus\ncorpus._import_heavy_modules()\n"
              "cells, timeout = json.loads(sys.stdin.read())\nprint(json.dumps(corpus.fork_and_grade(cells, timeout)))")
    done = subprocess.run([sys.executable, "-c", script], input=json_module.dumps([cells, 120.0]),
                          capture_output=True, text=True, check=True, timeout=300)
    result = json_module.loads(done.stdout)
    return {c["grade_id"]: (c["points"], c["max_points"]) for c in result["cells"]}


@pytest.mark.parametrize("how", ["merged", "moved"])
def test_merged_and_moved_answers_keep_full_marks(tmp_path, how):
    from gradekit.staging.repair import prepare_submission

    release = nbformat.read(RELEASE_LAB1, as_version=4)
    answers = _answers()
    nb = nbformat.from_dict(release)
    for cell in nb.cells:  # every answer written
        if _grade_id(cell) in answers:
            cell.source = answers[_grade_id(cell)]
    if how == "merged":  # linear_regression pasted into sigmoid's cell, its own cell deleted
        merged = next(c for c in nb.cells if _grade_id(c) == "sigmoid")
        merged.source = answers["linear_regression"] + "\n\n\n" + answers["sigmoid"]
        nb.cells = [c for c in nb.cells if _grade_id(c) != "linear_regression"]
    else:  # the sigmoid cell moved to the very end of the notebook
        moved = next(c for c in nb.cells if _grade_id(c) == "sigmoid")
        nb.cells = [c for c in nb.cells if c is not moved] + [moved]
    path = tmp_path / f"{how}.ipynb"
    nbformat.write(nb, path)
    marks = _marks_through_the_judge(prepare_submission(path, release).notebook)
    lost = {grade_id: points for grade_id, points in marks.items() if points[0] < points[1]}
    assert lost == {} and len(marks) >= 10, marks
