"""Hand grades belong to the answer they graded (`gradekit.scoring.hand_grades`), through re-submissions with
and without a changed written answer, an invalid re-submission, and a scorer killed after nbgrader's commit."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, submission
from nbgrader.api import Gradebook
from test_grade_runs import build_course

from gradekit.course.exits import EXIT_OK
from gradekit.course.status import Status, write_status
from gradekit.delivery.lms_export import results
from gradekit.grading.run import grade_lab
from gradekit.sandbox.bwrap import bwrap_path
from gradekit.sandbox.settings import Limits
from gradekit.scoring.hand_grades import PREVIOUS, keep_aside
from gradekit.scoring.ungradable import record_ungradable

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hand_grades"),
              pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")]

RIGHT = "def double(x):\n    return 2 * x\n"
WHY = "Doubling is multiplying by two."


def hand_in(course, student: str, why: str = WHY, code: str = RIGHT, broken: bool = False) -> None:
    path = course.submitted / student / LAB / f"{NOTEBOOK}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    if broken:
        path.write_text('{"cells": [oops', encoding="utf-8")
        return
    nb = submission(course, code)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "why_double":
            cell.source = why
    nbformat.write(nb, path)


def grade(course, students: list[str]) -> None:
    run = grade_lab(course, LAB, workers=1, limits=Limits(timeout=120), progress=io.StringIO(), students=students)
    write_status(course, run.status_file(), partial=True)
    for status in run.students:  # what `gradekit grade` does for an invalid submission
        if status.status == Status.INVALID:
            record_ungradable(course, LAB, status.student, status.reason)


def by_hand(course, student: str, points: float, comment: str) -> None:
    """What the formgrader does when the instructor grades the written answer."""
    with Gradebook(course.db_url) as gradebook:
        grade = gradebook.find_grade("why_double", NOTEBOOK, LAB, student)
        grade.manual_score, grade.needs_manual_grade = points, False
        gradebook.find_comment("why_double", NOTEBOOK, LAB, student).manual_comment = comment
        gradebook.db.commit()


def written(course, student: str) -> tuple[float | None, bool, str | None, str | None]:
    with Gradebook(course.db_url) as gradebook:
        grade = gradebook.find_grade("why_double", NOTEBOOK, LAB, student)
        comment = gradebook.find_comment("why_double", NOTEBOOK, LAB, student)
        return grade.manual_score, grade.needs_manual_grade, comment.manual_comment, comment.auto_comment


def total(course, student: str) -> float:
    with Gradebook(course.db_url) as gradebook:
        return float(gradebook.find_submission(LAB, student).score)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = build_course(tmp_path_factory.mktemp("hand") / "course")
    for student in ("ann", "bob", "cy", "dee"):
        hand_in(course, student)
    grade(course, ["ann", "bob", "cy", "dee"])
    for student in ("ann", "bob", "cy", "dee"):
        by_hand(course, student, 2.0, "Clear and right.")
    return course


def test_an_unchanged_written_answer_keeps_its_hand_grade_through_a_resubmission(course):
    hand_in(course, "ann", code="def double(x):\n    return x + x\n")  # new code, same written answer
    grade(course, ["ann"])
    assert written(course, "ann")[:3] == (2.0, False, "Clear and right.")
    assert total(course, "ann") == 5.0


def test_a_changed_written_answer_needs_grading_again_and_shows_the_earlier_grade(course):
    hand_in(course, "bob", why="Because a tensor has two dimensions.")
    grade(course, ["bob"])
    score, pending, comment, auto = written(course, "bob")
    assert (score, pending, comment) == (None, True, None)  # the old 2 points never count for the new answer
    assert auto.startswith(f"{PREVIOUS}: 2 / 2, for an earlier answer")
    assert total(course, "bob") == 3.0
    rows, _ = results(course, [LAB])
    bob = next(row for row in rows if row.student == "bob").labs[LAB]
    assert bob.score == 3.0 and "written answers not graded yet" in bob.reason


def test_an_invalid_resubmission_scores_0_and_the_original_answer_gets_its_hand_grade_back(course):
    hand_in(course, "cy", broken=True)
    grade(course, ["cy"])
    assert total(course, "cy") == 0.0
    hand_in(course, "cy")  # the original notebook again
    grade(course, ["cy"])
    assert written(course, "cy")[:3] == (2.0, False, "Clear and right.")
    assert total(course, "cy") == 5.0


def test_hand_grades_left_pending_by_a_killed_scorer_are_settled_by_the_next_grade(course):
    # Our scorer keeps the hand grades aside, then nbgrader's re-autograde commits and flags every
    # hand-graded cell; a scorer killed right after that commit leaves the gradebook exactly so.
    keep_aside(course, LAB, "dee")
    done = course.nbgrader("autograde", LAB, "--student", "dee", "--force", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert written(course, "dee")[1] is True
    cli = subprocess.run([sys.executable, "-m", "gradekit", "grade", LAB, "--course", str(course.root), "--outdated"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert cli.returncode == EXIT_OK, cli.stderr
    assert written(course, "dee")[:3] == (2.0, False, "Clear and right.")
