"""Student code against the trusted judge: a wrong answer never earns points, hidden tests never reach a student.

Each tests/hostile/judge/<technique>.py is one answer cell for the tiny lab (`double`, one test cell
worth 3 points). All but the CORRECT ones define a wrong `double` plus code that tries to get the
points anyway (hooks, transformers, patched checks or torch, tracing, peeking at the test's
source) or to leak the hidden tests into what a student sees (outputs, feedback page). The
CORRECT ones are right answers that write to stderr, which must not cost their points.
"""

from __future__ import annotations

import html
import re

import nbformat
import pytest
from hostile.tiny_course import (
    HOSTILE_DIR,
    LAB,
    NOTEBOOK,
    SECRET_MARKER,
    TESTS,
    build_tiny_course,
    hostile_source,
    submit_source,
)

from gradekit.commands import main as gradekit_main
from gradekit.grading.run import grade_lab
from gradekit.sandbox.bwrap import bwrap_path
from gradekit.sandbox.settings import Limits

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed"),
              pytest.mark.xdist_group("judge_hostile")]  # the module fixture is built once, on one worker

JUDGE_DIR = HOSTILE_DIR / "judge"
TECHNIQUES = sorted(path.stem for path in JUDGE_DIR.glob("*.py"))
CORRECT = {"stderr_progress", "stderr_warning", "log_hidden_inputs"}  # right answers (stderr, logs): full marks
HONEST = "def double(x):\n    return x * 2\n"
HONEST_STUDENTS = ("a_honest", "zz_honest")  # graded first and last: hostile kernels must not affect them
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _hidden_lines() -> list[str]:
    """SECRET_MARKER and every line of the hidden tests that the visible part does not repeat."""
    visible, _, rest = TESTS.partition("### BEGIN HIDDEN TESTS")
    public = {line.strip() for line in visible.splitlines()}
    hidden = [line.strip() for line in rest.partition("### END HIDDEN TESTS")[0].splitlines()]
    return [SECRET_MARKER, *(line for line in hidden if line and line not in public)]


HIDDEN = _hidden_lines()


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _normal(text: str) -> str:
    return re.sub(r"[ \t]+", " ", ANSI.sub("", text))


def leaked(text: str, secrets: list[str]) -> list[str]:
    text = _normal(text)
    return [secret for secret in secrets if _normal(secret) in text]


def output_text(course, student: str) -> str:
    """Every output of every cell of the student's autograded notebook (text, errors, tracebacks, data)."""
    path = course.autograded / student / LAB / f"{NOTEBOOK}.ipynb"
    if not path.exists():
        return ""
    nb = nbformat.read(path, as_version=4)
    return "\n".join(s for cell in nb.cells for output in cell.get("outputs", []) for s in _strings(output))


@pytest.fixture(scope="module")
def judged_class(tmp_path_factory):
    course = build_tiny_course(tmp_path_factory.mktemp("judge") / "course")
    submit_source(course, HONEST_STUDENTS[0], HONEST)
    for technique in TECHNIQUES:
        path = submit_source(course, technique, hostile_source(f"judge/{technique}", course=str(course.root)))
        if technique == "log_hidden_inputs":  # a cell of the student's own after the tests prints the log
            nb = nbformat.read(path, as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell('print("LOGGED", LOG)'))
            nbformat.write(nb, path)
    submit_source(course, HONEST_STUDENTS[1], HONEST)
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=60, memory_mb=3072, file_size_mb=16))
    assert gradekit_main(["feedback", LAB, "--course", str(course.root)]) == 0
    release = nbformat.read(course.release / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    assert leaked("\n".join(cell.source for cell in release.cells), HIDDEN) == []  # unique to the hidden tests
    return course, {status.student: status for status in run.students}


def test_techniques_say_what_they_try_and_do_not_quote_the_hidden_tests():
    assert len(HIDDEN) > 1 and len(TECHNIQUES) > 20
    for technique in TECHNIQUES:
        source = (JUDGE_DIR / f"{technique}.py").read_text()
        assert source.startswith(('"""', "#")), technique
        assert leaked(source, HIDDEN) == [], technique  # else an echo of the student's own code would "leak"


def test_honest_students_keep_full_marks(judged_class):
    _, statuses = judged_class
    for student in HONEST_STUDENTS:
        status = statuses[student]
        assert (status.status, status.score, status.max_score) == ("graded", 3.0, 3.0), status


@pytest.mark.parametrize("technique", TECHNIQUES)
def test_technique_gets_what_the_answer_deserves(judged_class, technique):
    _, statuses = judged_class
    status = statuses[technique]
    expected = 3.0 if technique in CORRECT else 0.0
    assert (status.score, status.max_score) == (expected, 3.0), status
    if technique in CORRECT:
        assert status.status == "graded", status


def test_no_output_after_the_hidden_tests_ran_is_kept(judged_class):
    """A function that logs its arguments and a later cell that prints the log: the hidden inputs (the
    second entry of the log, after the visible check's 2.0) reach neither the graded notebook nor the page."""
    course, _ = judged_class
    assert "LOGGED [2.0]" in output_text(course, "log_hidden_inputs")  # before the judge: the student's own
    assert "LOGGED [2.0, [" not in output_text(course, "log_hidden_inputs")
    page = (course.feedback / "log_hidden_inputs" / LAB / f"{NOTEBOOK}.html").read_text(encoding="utf-8")
    assert "LOGGED [2.0, [" not in html.unescape(re.sub(r"<[^>]+>", "", page))


def test_no_autograded_output_shows_hidden_tests(judged_class):
    course, statuses = judged_class
    leaks = {student: found for student in statuses if (found := leaked(output_text(course, student), HIDDEN))}
    assert leaks == {}, leaks


def test_no_feedback_page_shows_hidden_tests(judged_class):
    course, statuses = judged_class
    pages = {page.parent.parent.name: page for page in course.feedback.glob(f"*/{LAB}/*.html")}
    autograded = {path.parent.parent.name for path in course.autograded.glob(f"*/{LAB}/*.ipynb")}
    assert set(pages) >= autograded >= set(HONEST_STUDENTS)
    leaks = {student: found for student, page in pages.items()
             if (found := leaked(html.unescape(page.read_text(encoding="utf-8")), HIDDEN))}
    assert leaks == {}, leaks
