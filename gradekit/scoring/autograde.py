"""Scoring one executed notebook with nbgrader's own Autograde, on the real gradebook.

`Execute` is replaced by `LookupExecute`, which hands back the notebook executed and judged in the
sandbox after checking that it is the sanitized submission cell by cell; saving grades, late penalties
and manual grades stay nbgrader's. Hand grades follow the answer they graded (`gradekit.scoring.hand_grades`).
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

from gradekit.course.directory import Course
from gradekit.course.gradebook import nbgrader_api
from gradekit.course.safe_text import NeutralizeStudentContent
from gradekit.course.status import Status, StudentStatus
from gradekit.scoring.hand_grades import keep_aside, settle


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
        status.late_penalty = float(submission.late_submission_penalty or 0.0)


def score_one(course: Course, lab: str, scorer: NbGraderAPI, student: str, outcome_status: str,
              outcome_reason: str) -> dict:
    """nbgrader autograde of one executed notebook (staging/executed/<student>/), on the real gradebook.

    Hand-graded cells whose answer did not change keep their "graded" state. Returns the student's
    status, reason, score and max score as recorded, and the seconds it took."""
    began = time.monotonic()
    keep_aside(course, lab, student)  # the hand grades and the answers they graded, before nbgrader replaces them
    outcome = scorer.autograde(lab, student, force=True, create=True)
    if outcome["success"]:
        settle(course, lab, student)
    status = StudentStatus(student, Status.GRADED)
    if not outcome["success"]:
        status.status, status.reason = Status.GRADER_ERROR, "grader error: " + _failure_reason(outcome)
    else:
        if outcome_status != "done":
            status.status, status.reason = outcome_status, outcome_reason
        record_score(course, lab, status)
    return {"status": status.status, "reason": status.reason, "score": status.score, "max_score": status.max_score,
            "late_penalty": status.late_penalty,
            "seconds": time.monotonic() - began}
