"""The nbgrader side of a grading run: staging (copy, repair, sanitize) and scoring, in a worker process.

`gradekit.grade` runs the notebooks and their judge in its own process; nbgrader's passes run in a
worker process beside it, so they do not hold up the judge's threads (one interpreter lock):
- staging copies and repairs each submission and sanitizes it with nbgrader's own sanitize
  preprocessors (`Sanitizer`), on a private copy of the gradebook; all submissions are staged
  within seconds, while the first notebooks run;
- scoring runs nbgrader's Autograde on the real gradebook, with `Execute` replaced by
  `LookupExecute` (the notebook executed and judged in the sandbox), as each notebook finishes.
  The worker is the only writer of the gradebook during the run; one student's record at a time.

The worker ignores Ctrl-C and SIGTERM: the grader stops sending work and waits for the student in
hand, so a record is never half written. Protocol: one JSON task per line on stdin, one JSON answer
per line on the worker's result stream (its original stdout; its own prints go to the log).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps.api import NbGraderAPI
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
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
from traitlets.config.loader import PyFileConfigLoader

from gradekit.bounded import prepare_submission_bounded
from gradekit.course import Course
from gradekit.exits import ToolFailure
from gradekit.repair import InvalidSubmission
from gradekit.safe_text import NeutralizeStudentContent

GRADED, TIMED_OUT, CRASHED, INVALID, MISSING = "graded", "timed out", "crashed", "invalid", "missing"
GRADER_ERROR = "grader error"  # the grader failed for this student: not scored, the previous grade stays


@dataclass
class StudentStatus:
    student: str
    status: str
    reason: str = ""
    repairs: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    score: float | None = None
    max_score: float | None = None
    seconds: float | None = None  # the notebook in its sandbox, judge included
    judge_seconds: float | None = None
    judge_cpu: float | None = None


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


def course_config(course: Course) -> Config:
    config = Config()
    if (course.root / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config())
    config.CourseDirectory.root = str(course.root)
    return config


def _api(config: Config) -> NbGraderAPI:
    # nbgrader's own SQLAlchemy warnings (plain `nbgrader autograde` hides them the same way).
    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", module="sqlalchemy")
    log = logging.getLogger("gradekit.nbgrader")
    log.propagate = False
    log.setLevel(logging.INFO)
    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, authenticator=Authenticator(config=config), config=config)
    api.log = log
    coursedir.log = log
    return api


def sanitize_api(config: Config, staging: Path) -> NbGraderAPI:
    """nbgrader Autograde that only sanitizes, into staging/sanitized, on a gradebook copy."""
    config = copy.deepcopy(config)
    config.CourseDirectory.submitted_directory = str(staging / "submitted")
    config.CourseDirectory.autograded_directory = str(staging / "sanitized")
    config.CourseDirectory.db_url = f"sqlite:///{staging / 'gradebook-copy.db'}"
    config.Autograde.autograde_preprocessors = []
    return _api(config)


def scoring_api(config: Config, staging: Path) -> NbGraderAPI:
    """nbgrader Autograde on the real gradebook, with execution looked up instead of run."""
    config = copy.deepcopy(config)
    config.CourseDirectory.submitted_directory = str(staging / "submitted")
    config.LookupExecute.executed_dir = str(staging / "executed")
    config.Autograde.autograde_preprocessors = [
        LookupExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades,
        AssignLatePenalties, CheckCellMetadata, NeutralizeStudentContent]
    return _api(config)


def _copy_regular_files(source: Path, target: Path) -> None:
    """Copy a submission folder, skipping symlinks and anything that is not a file or folder."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_symlink():
            continue
        if entry.is_dir():
            _copy_regular_files(entry, target / entry.name)
        elif entry.is_file():
            shutil.copyfile(entry, target / entry.name)


def stage(course: Course, lab: str, student: str, staging: Path,
          release_nb: nbformat.NotebookNode | None) -> StudentStatus:
    """Copy and repair one submission into staging/submitted; INVALID status if it cannot be graded."""
    status = StudentStatus(student, GRADED)
    target = staging / "submitted" / student / lab
    _copy_regular_files(course.submitted / student / lab, target)
    notebook = target / f"{course.notebook_name(lab)}.ipynb"
    if not notebook.is_file():
        others = sorted(p for p in target.glob("*.ipynb") if p.is_file())
        if len(others) != 1:
            found = ", ".join(p.name for p in others) or "no notebook"
            status.status, status.reason = INVALID, (
                f"no {notebook.name} in the submission ({found}); place files with `gradekit collect`")
            return status
        # One notebook under another name (`Copy of ...`, `lab1 (2).ipynb`): it is the submission.
        others[0].rename(notebook)
        status.repairs.append(f"graded {others[0].name} as {notebook.name}")
    try:
        prepared = prepare_submission_bounded(notebook, release_nb)  # time and memory limits, own process
    except InvalidSubmission as error:
        status.status, status.reason = INVALID, str(error)
        return status
    status.repairs += prepared.repairs
    status.flags = list(prepared.flags)
    nbformat.write(prepared.notebook, notebook)
    return status


class Sanitizer:
    """nbgrader's sanitize pass (its Autograde converter's `sanitize_preprocessors`, as configured: clear
    outputs, deduplicate ids, the kernelspec and the locked and test cells from the gradebook, check the
    cells' metadata), run on one notebook in memory.

    The same preprocessors as `nbgrader autograde`'s first pass, so the result is what scoring sanitizes
    again (`LookupExecute` checks it cell by cell), without the converter's per-call set-up, gradebook
    writes and file copies (two thirds of its cost). Reads the gradebook copy."""

    def __init__(self, config: Config, course: Course, lab: str, db_url: str) -> None:
        from nbgrader.converters import Autograde

        coursedir = CourseDirectory(config=config)
        self.preprocessors = [cls(config=config) for cls in Autograde(coursedir=coursedir, config=config)
                              .sanitize_preprocessors]
        self.ignore = list(coursedir.ignore)
        self.course, self.lab, self.db_url = course, lab, db_url

    def sanitize(self, staging: Path, student: str) -> Path:
        """staging/submitted/<student>/<lab>/ -> staging/sanitized/<student>/<lab>/ (notebook and files)."""
        name = self.course.notebook_name(self.lab)
        source = staging / "submitted" / student / self.lab
        target = staging / "sanitized" / student / self.lab
        nb = nbformat.read(source / f"{name}.ipynb", as_version=4)
        resources = {"unique_key": name, "output_files_dir": f"{name}_files",
                     "nbgrader": {"student": student, "assignment": self.lab, "notebook": name, "db_url": self.db_url}}
        for preprocessor in self.preprocessors:
            nb, resources = preprocessor(nb, resources)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.ipynb", *self.ignore), dirs_exist_ok=True)
        nbformat.write(nb, target / f"{name}.ipynb")
        return target / f"{name}.ipynb"


def _failure_reason(result: dict) -> str:
    lines = [line for line in (result.get("log", "") + "\n" + result.get("error", "")).splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["nbgrader failed"])[-1][:300]


def _score(course: Course, lab: str, status: StudentStatus) -> None:
    with Gradebook(course.db_url) as gb:
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
    return {c.metadata["nbgrader"]["grade_id"]: c.source.strip() for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") in grade_ids}


def _hand_graded(course: Course, lab: str, student: str) -> dict[str, str]:
    """grade_id -> answer text of every cell the instructor has graded by hand (before a regrade)."""
    name = course.notebook_name(lab)
    with Gradebook(course.db_url) as gb:
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
    with Gradebook(course.db_url) as gb:
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
    status = StudentStatus(student, GRADED)
    if not outcome["success"]:
        status.status, status.reason = GRADER_ERROR, "grader error: " + _failure_reason(outcome)
    else:
        if outcome_status != "done":
            status.status, status.reason = outcome_status, outcome_reason
        _score(course, lab, status)
    return {"status": status.status, "reason": status.reason, "score": status.score, "max_score": status.max_score,
            "seconds": time.monotonic() - began}


# ---------------------------------------------------------------- the worker processes


def _read_release(course: Course, lab: str) -> nbformat.NotebookNode | None:
    path = course.release / lab / f"{course.notebook_name(lab)}.ipynb"
    return nbformat.read(path, as_version=4) if path.exists() else None


def _serve(course: Course, lab: str, staging: Path, answers) -> None:
    config = course_config(course)
    release_nb = _read_release(course, lab)
    sanitizer = scorer = None
    for line in sys.stdin:
        task = json.loads(line)
        student = task["student"]
        if task["op"] == "stage":
            sanitizer = sanitizer or Sanitizer(config, course, lab, f"sqlite:///{staging / 'gradebook-copy.db'}")
            began = time.monotonic()
            status = stage(course, lab, student, staging, release_nb)
            notebook = None
            if status.status == GRADED:
                try:
                    notebook = str(sanitizer.sanitize(staging, student))
                except Exception as error:  # noqa: BLE001 - nbgrader refused the notebook: that student only
                    status.status, status.reason = INVALID, f"nbgrader could not sanitize it: {error}"[:300]
            answer = {"status": asdict(status), "notebook": notebook, "seconds": time.monotonic() - began}
        else:
            scorer = scorer or scoring_api(config, staging)
            answer = score_one(course, lab, scorer, student, task["outcome_status"], task["outcome_reason"])
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def _share_engines() -> None:
    """One SQLAlchemy engine per database in this worker, shared by every `Gradebook` nbgrader opens.

    nbgrader opens a new Gradebook (a new engine) in each of its steps, for each student, so
    SQLAlchemy's per-engine cache of compiled statements never warms up: sharing the engine
    halves the scorer's CPU. Same statements, same sessions and transactions; this process only
    (one thread), and `Gradebook.close()`'s `dispose()` only recycles the shared pool's connections."""
    import nbgrader.api

    engines: dict[tuple, object] = {}
    create_engine = nbgrader.api.create_engine

    def shared_engine(url, **options):
        key = (str(url), tuple(sorted(options.items())))
        if key not in engines:
            engines[key] = create_engine(url, **options)
        return engines[key]

    nbgrader.api.create_engine = shared_engine


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("course", type=Path)
    parser.add_argument("lab")
    parser.add_argument("staging", type=Path)
    args = parser.parse_args()
    # The grader decides when to stop: between two students, never in the middle of a record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever nbgrader or a library prints goes to the log, not into the answers
    _share_engines()
    _serve(Course(args.course), args.lab, args.staging, answers)
    return 0


class StepsWorker:
    """The worker process (see the module's docstring); `run(task)` blocks until its answer. Thread-safe:
    the grader's thread stages while the scoring thread scores, one task at a time."""

    def __init__(self, course: Course, lab: str, staging: Path, role: str) -> None:
        self.role = role
        self._lock = threading.Lock()
        self.log_path = staging / f"{role}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gradekit.nbgrader_steps", str(course.root), lab, str(staging)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"})

    def run(self, task: dict) -> dict:
        with self._lock:
            return self._run(task)

    def _run(self, task: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(task) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] if self.log_path.exists() else []
            raise ToolFailure(f"the nbgrader {self.role} stopped: {tail[0][:300] if tail else 'no message'}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    sys.exit(main())
