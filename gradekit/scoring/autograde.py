"""Scoring one executed notebook with nbgrader's own Autograde, on the real gradebook.

`Execute` is replaced by `LookupExecute`, which hands back the notebook executed and judged in the
sandbox after checking that it is the sanitized submission cell by cell; saving grades, late penalties
and manual grades stay nbgrader's. Hand-graded cells whose answer did not change keep their grade.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import MissingEntry
from nbgrader.apps.api import NbGraderAPI
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    SaveAutoGrades,
)
from traitlets import Unicode
from traitlets.config import Config

from gradekit.course.cells import grade_id_of
from gradekit.course.directory import Course
from gradekit.course.gradebook import nbgrader_api
from gradekit.course.safe_text import NeutralizeStudentContent
from gradekit.course.status import Status, StudentStatus


class LookupExecute(NbGraderPreprocessor):
    """Stands in for nbgrader's Execute: returns the notebook executed earlier in the sandbox."""

    executed_dir = Unicode("", help="Directory of executed notebooks: <student>/<notebook>.ipynb").tag(
        config=True)

    def preprocess(self, nb, resources):
        meta = resources["nbgrader"]
        path = Path(self.executed_dir, meta["student"], f"{meta['notebook']}.ipynb")
        executed = nbformat.read(path, as_version=4)
        if [(c.cell_type, c.source) for c in executed.cells] != [(c.cell_type, c.source) for c in nb.cells]:
            raise ValueError(f"{path}: the executed notebook is not the sanitized submission")
        for cell, done in zip(nb.cells, executed.cells, strict=True):
            if cell.cell_type == "code":
                cell.outputs = done.outputs
                cell.execution_count = done.execution_count
        if "language_info" in executed.metadata:
            nb.metadata["language_info"] = executed.metadata["language_info"]
        return nb, resources


def scoring_api(config: Config, staging: Path) -> NbGraderAPI:
    """nbgrader Autograde on the real gradebook, with execution looked up instead of run."""
    config = copy.deepcopy(config)
    config.CourseDirectory.submitted_directory = str(staging / "submitted")
    config.LookupExecute.executed_dir = str(staging / "executed")
    config.Autograde.autograde_preprocessors = [
        LookupExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata, NeutralizeStudentContent]
    return nbgrader_api(config)


def _failure_reason(result: dict) -> str:
    lines = [line for line in (result.get("log", "") + "\n" + result.get("error", "")).splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["nbgrader failed"])[-1][:300]


def record_score(course: Course, lab: str, status: StudentStatus) -> None:
    with course.open_gradebook() as gb:
        try:
            submission = gb.find_submission(lab, status.student)
        except MissingEntry:
            return
        status.score, status.max_score = float(submission.score), float(submission.max_score)


def _answers_of(path: Path, grade_ids: set[str]) -> dict[str, str]:
    if not grade_ids or not path.exists():
        return {}
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable old copy: the state is recomputed as nbgrader does
        return {}
    return {grade_id_of(c): c.source.strip() for c in nb.cells
            if grade_id_of(c) in grade_ids}


def _hand_graded(course: Course, lab: str, student: str) -> dict[str, str]:
    """grade_id -> answer text of every cell the instructor has graded by hand (before a regrade)."""
    name = course.notebook_name(lab)
    with course.open_gradebook() as gb:
        try:
            notebook = gb.find_submission_notebook(name, lab, student)
        except MissingEntry:
            return {}
        graded = {g.name for g in notebook.grades if g.manual_score is not None and not g.needs_manual_grade}
    return _answers_of(course.autograded / student / lab / f"{name}.ipynb", graded)


def _keep_hand_grading(course: Course, lab: str, student: str, before: dict[str, str]) -> None:
    """nbgrader marks every hand-graded cell "needs manual grading" again when it re-autogrades; where the
    answer did not change, the instructor's grade stands as graded."""
    name = course.notebook_name(lab)
    after = _answers_of(course.autograded / student / lab / f"{name}.ipynb", set(before))
    unchanged = [grade_id for grade_id, text in before.items() if after.get(grade_id) == text]
    if not unchanged:
        return
    with course.open_gradebook() as gb:
        for grade_id in unchanged:
            grade = gb.find_grade(grade_id, name, lab, student)
            if grade.manual_score is not None:
                grade.needs_manual_grade = False
        gb.db.commit()


def score_one(course: Course, lab: str, scorer: NbGraderAPI, student: str, outcome_status: str,
              outcome_reason: str) -> dict:
    """nbgrader autograde of one executed notebook (staging/executed/<student>/), on the real gradebook.

    Hand-graded cells whose answer did not change keep their "graded" state. Returns the student's
    status, reason, score and max score as recorded, and the seconds it took."""
    began = time.monotonic()
    hand_graded = _hand_graded(course, lab, student)
    outcome = scorer.autograde(lab, student, force=True, create=True)
    if outcome["success"]:
        _keep_hand_grading(course, lab, student, hand_graded)
    status = StudentStatus(student, Status.GRADED)
    if not outcome["success"]:
        status.status, status.reason = Status.GRADER_ERROR, "grader error: " + _failure_reason(outcome)
    else:
        if outcome_status != "done":
            status.status, status.reason = outcome_status, outcome_reason
        record_score(course, lab, status)
    return {"status": status.status, "reason": status.reason, "score": status.score, "max_score": status.max_score,
            "seconds": time.monotonic() - began}
