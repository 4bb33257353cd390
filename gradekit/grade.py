"""`python -m gradekit grade <lab>`: grade every submission, in parallel, sandboxed.

How, and why scores equal plain `nbgrader autograde`:
1. Stage: each `submitted/<student>/<lab>/` is copied (regular files only) into a private
   staging dir and repaired there with `gradekit.repair.prepare_submission`; submitted/ is
   never written.
2. Sanitize (one process, fast): nbgrader's own Autograde converter with its sanitize
   preprocessors (ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells,
   CheckCellMetadata) against a *copy* of the gradebook, and no autograde preprocessors.
3. Execute (N at a time, untrusted): each sanitized notebook runs in a sandboxed executor
   (`gradekit.sandbox`) that drives nbgrader's own `Execute` preprocessor with the course's
   settings. Executors are started, with the lab's modules imported, before their notebook
   arrives (warm pool).
4. Score (one process, the only gradebook writer): nbgrader's Autograde again, on the real
   gradebook, with `Execute` replaced by `LookupExecute`, which hands back the notebook
   executed in step 3 after checking that it is the same notebook cell by cell. Saving
   grades, late penalties and manual grades stay nbgrader's.
"""

from __future__ import annotations

import argparse
import ast
import copy
import fcntl
import json
import logging
import math
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
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
    Execute,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    SaveAutoGrades,
)
from tqdm import tqdm
from traitlets import Unicode
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from gradekit import exits, sandbox_limits
from gradekit.bounded import prepare_submission_bounded
from gradekit.course import REPO_ROOT, Course
from gradekit.distributed import execution_pool
from gradekit.exits import (
    EXIT_ATTENTION,
    EXIT_FAILED,
    EXIT_OK,
    ToolFailure,
    UsageError,
    deferred_interrupts,
    interrupts_as_keyboard_interrupt,
    require_lab,
)
from gradekit.gradebook import private_copy
from gradekit.judge import run_judged, trusted_program
from gradekit.lms.gradebook import record_ungradable
from gradekit.repair import InvalidSubmission
from gradekit.safe_text import NeutralizeStudentContent, is_safe_student_id, terminal_safe
from gradekit.sandbox import ExecutionResult, Limits, RunningExecutor, Sandbox, bwrap_path, copy_into

GRADED, TIMED_OUT, CRASHED, INVALID, MISSING = "graded", "timed out", "crashed", "invalid", "missing"
GRADER_ERROR = "grader error"  # the grader failed for this student: not scored, the previous grade stays
MIN_MEMORY_MB = 1024
LOCK_NAME = ".gradekit-grade.lock"
EXECUTE_SETTINGS = ("timeout", "interrupt_on_timeout", "raise_on_iopub_timeout", "error_on_timeout",
                    "extra_arguments", "allow_errors", "startup_timeout", "iopub_timeout")


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


@dataclass
class GradeRun:
    lab: str
    sandboxed: bool
    students: list[StudentStatus]
    # Wall seconds per student of each phase (staging = copy + repair + sanitize, in one process;
    # execution = the notebook in its sandbox, judge included, N at a time; judge = the judge's share
    # of it; scoring = nbgrader's autograde, in one process) and of the whole run.
    phases: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def all_graded(self) -> bool:
        return bool(self.students) and all(s.status == GRADED for s in self.students)


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


# ---------------------------------------------------------------- configuration


def course_config(course: Course) -> Config:
    config = Config()
    if (course.root / "nbgrader_config.py").exists():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config())
    config.CourseDirectory.root = str(course.root)
    return config


def execute_settings(config: Config) -> dict:
    """The course's `Execute` settings, for the executor in the sandbox."""
    execute = Execute(config=config)
    return {name: getattr(execute, name) for name in EXECUTE_SETTINGS if execute.has_trait(name)}


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


def warm_modules(nb: nbformat.NotebookNode) -> list[str]:
    """Modules the lab imports (from its code cells), to import in a kernel before its notebook arrives."""
    modules: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.append(node.module)
    return list(dict.fromkeys(modules))


# ---------------------------------------------------------------- staging


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


def _failure_reason(result: dict) -> str:
    lines = [line for line in (result.get("log", "") + "\n" + result.get("error", "")).splitlines()
             if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["nbgrader failed"])[-1][:300]


# ---------------------------------------------------------------- execution pool


class ExecutionPool:
    """N workers; each runs one notebook at a time and keeps the next executor warming up.

    `abort()` (Ctrl-C, SIGTERM) kills every live executor at once; an executor that cannot start is
    replaced once, and if the second cannot start either the student is left as they were
    (GRADER_ERROR: an infrastructure fault is never the student's zero)."""

    def __init__(self, sandbox: Sandbox, workers: int, warm: bool, on_done, expected: int,
                 program: dict[str, str], first: RunningExecutor | None = None) -> None:
        self.sandbox = sandbox
        self.program = program
        self.warm = warm
        self.on_done = on_done
        self.jobs: queue.Queue = queue.Queue()
        # One executor serves one notebook: never start more than there are notebooks, so no
        # spare (a kernel with torch imported, seconds of CPU) is started only to be killed.
        self.starts_left = expected - (first is not None)
        self.first = first
        self.lock = threading.Lock()
        self.live: set[RunningExecutor] = set()
        self.aborted = threading.Event()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(max(1, workers))]
        for thread in self.threads:
            thread.start()

    def submit(self, student: str, files: Path, nb: nbformat.NotebookNode) -> None:
        self.jobs.put((student, files, nb))

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        with self.lock:
            leftovers, self.live = list(self.live), set()
        for executor in leftovers:
            executor.kill()

    def abort(self) -> None:
        """Stop now: no new notebook starts, every running one is killed (its student is not scored)."""
        self.aborted.set()
        with self.lock:
            live = list(self.live)
        for executor in live:
            executor.kill()

    def _launch(self, counted: bool) -> RunningExecutor | None:
        with self.lock:
            if self.aborted.is_set():
                return None
            if self.first is not None:
                executor, self.first = self.first, None
                self.live.add(executor)
                return executor
            if counted:
                if self.starts_left <= 0:
                    return None
                self.starts_left -= 1
        executor = self.sandbox.start()
        with self.lock:
            self.live.add(executor)
        if self.aborted.is_set():
            executor.kill()
        return executor

    def _retire(self, executor: RunningExecutor) -> None:
        executor.kill()
        with self.lock:
            self.live.discard(executor)

    def _ready_executor(self, spare: RunningExecutor | None) -> tuple[RunningExecutor | None, str]:
        """A started executor whose kernel is up; a second try on a fresh one; else why not."""
        problem = ""
        for executor in (spare or self._launch(counted=False), None):
            executor = executor or self._launch(counted=False)
            if executor is None:
                return None, "the grading run was interrupted"
            problem = executor.ready() or ""
            if not problem:
                return executor, ""
            self._retire(executor)
        return None, problem

    def _work(self) -> None:
        spare = self._launch(counted=True) if self.warm else None
        while (job := self.jobs.get()) is not None:
            student, files, nb = job
            if self.aborted.is_set():
                continue
            executor, problem = self._ready_executor(spare)
            spare = self._launch(counted=True) if self.warm else None  # warms up while this one runs
            if executor is None:
                self.on_done(student, ExecutionResult(GRADER_ERROR, f"grader error: {problem}", nb, 0.0))
                continue
            try:
                copy_into(executor, files)
                result = run_judged(executor, nb, self.program)
            except Exception as error:  # a broken executor must not stop the batch
                result = ExecutionResult(GRADER_ERROR, f"grader error: {error}", nb, 0.0)
            finally:
                self._retire(executor)
            if self.aborted.is_set():
                continue
            self.on_done(student, result)
        if spare:
            self._retire(spare)


class Progress:
    """tqdm bars over the three phases (staging, execution, scoring), one line each, counts and time left."""

    def __init__(self, stream, total: int) -> None:
        self.stream, self.total = stream, total
        self.bars: list[tqdm] = []

    def bar(self, phase: str, total: int) -> tqdm:
        bar = tqdm(total=total, desc=f"{phase:<9}", unit="student", file=self.stream, position=len(self.bars),
                   leave=True, dynamic_ncols=True, mininterval=0.25, disable=self.stream is None or total == 0)
        self.bars.append(bar)
        return bar

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


# ---------------------------------------------------------------- the command


def students_of(course: Course, lab: str) -> tuple[list[str], list[str]]:
    """(students with a submission of `lab`, students known to the gradebook without one)."""
    # A folder name that could carry markup or control characters is not a student id (nbgrader's
    # formgrader shows ids unescaped): such a folder is left for the instructor to rename.
    submitted = sorted(p.parent.name for p in course.submitted.glob(f"*/{lab}")
                       if p.is_dir() and is_safe_student_id(p.parent.name))
    known: list[str] = []
    if course.has_gradebook():
        with Gradebook(course.db_url) as gb:
            known = [s.id for s in gb.students]
    return submitted, sorted(set(known) - set(submitted))


def _read_release(course: Course, lab: str) -> nbformat.NotebookNode | None:
    path = course.release / lab / f"{course.notebook_name(lab)}.ipynb"
    return nbformat.read(path, as_version=4) if path.exists() else None


def _score(course: Course, lab: str, status: StudentStatus) -> None:
    with Gradebook(course.db_url) as gb:
        try:
            submission = gb.find_submission(lab, status.student)
        except MissingEntry:
            return
        status.score, status.max_score = float(submission.score), float(submission.max_score)


def preflight(sandbox: Sandbox, limits: Limits) -> RunningExecutor:
    """Start one sandboxed kernel with the lab's imports before anything is graded (it then grades
    the first notebook). If it cannot start, no student is touched: the run stops here."""
    executor = sandbox.start()
    try:
        problem = executor.ready()
    except BaseException:
        executor.kill()
        raise
    if problem:
        executor.kill()
        message = (f"pre-flight failed: a sandboxed kernel with the lab's imports could not start ({problem}); "
                   "no grade was written")
        if limits.memory_mb < Limits.memory_mb:
            raise UsageError(f"{message}. --memory {limits.memory_mb} MB is too little for the lab's imports "
                             f"(the default is {Limits.memory_mb} MB)")
        raise ToolFailure(message + ". Check that bubblewrap works (`bwrap --ro-bind / / true`) and the limits.")
    return executor


def grade_lab(course: Course, lab: str, workers: int, limits: Limits, sandboxed: bool = True,
              warm: bool = True, progress=sys.stderr, students: list[str] | None = None,
              scheduler: str | None = None) -> GradeRun:
    """Grade `lab` (every submission, or only `students`); gradebook records are written whole per student."""
    config = course_config(course)
    submitted, missing = students_of(course, lab)
    if students is not None:
        unknown = sorted(set(students) - set(submitted))
        if unknown:
            raise UsageError(f"no submission of {lab} in {course.submitted} for: "
                             f"{', '.join(terminal_safe(s, 60) for s in unknown)}")
        submitted, missing = sorted(set(students)), []
    release_nb = _read_release(course, lab)
    staging = Path(tempfile.mkdtemp(prefix=f"gradekit-{lab}-"))
    bars = Progress(progress, len(submitted))
    try:
        private_copy(course, staging / "gradebook-copy.db")  # sanitizing writes: never to the real gradebook
        sandbox = Sandbox(staging / "runs", limits, sandboxed, warm_modules(release_nb) if release_nb else [],
                          execute_settings(config))
        (staging / "runs").mkdir()
        program = trusted_program(course.db_url, lab, course.notebook_name(lab))
        # On a Dask cluster the workers' sandboxes are checked by the cluster (a failure there is a
        # grader error for that student, never a zero); here, locally, before any grade is written.
        first = preflight(sandbox, limits) if submitted and scheduler is None else None
        statuses = {student: StudentStatus(student, MISSING, "no submission") for student in missing}
        results: dict[str, ExecutionResult] = {}
        phases: dict[str, list[float]] = {"staging": [], "execution": [], "judge": [], "scoring": []}
        run_started = time.monotonic()
        done = threading.Lock()
        staging_bar, execution_bar = bars.bar("staging", len(submitted)), bars.bar("executing", len(submitted))

        def on_done(student: str, result: ExecutionResult) -> None:
            with done:
                results[student] = result
                detail = f" ({terminal_safe(result.reason, 80)})" if result.status == GRADER_ERROR else ""
                execution_bar.set_postfix_str(f"{terminal_safe(student, 30)}: {result.status}{detail}",
                                              refresh=False)
                execution_bar.update(1)

        # Local processes, or a Dask cluster with --scheduler (execution only: scoring stays here).
        pool = execution_pool(sandbox, workers, warm, on_done, expected=len(submitted), program=program,
                              first=first, scheduler=scheduler, sandboxed=sandboxed)
        sanitizer = sanitize_api(config, staging)
        try:
            for student in submitted:
                began = time.monotonic()
                statuses[student] = status = stage(course, lab, student, staging, release_nb)
                staging_bar.update(1)
                if status.status == GRADED:
                    with deferred_interrupts():  # nbgrader swallows Ctrl-C ("Canceled") and goes on
                        outcome = sanitizer.autograde(lab, student, force=True, create=True)
                    files = staging / "sanitized" / student / lab
                    notebook = files / f"{course.notebook_name(lab)}.ipynb"
                    if outcome["success"] and notebook.exists():
                        pool.submit(student, files, nbformat.read(notebook, as_version=4))
                        phases["staging"].append(time.monotonic() - began)
                        continue
                    status.status, status.reason = INVALID, _failure_reason(outcome)
                with done:  # not executed: counted at once, so that the bar ends at the number of students
                    execution_bar.update(1)
        except BaseException:
            pool.abort()
            raise
        finally:
            pool.close()
        for student in submitted:  # a worker that failed must not leave a student "graded"
            if statuses[student].status == GRADED and student not in results:
                statuses[student].status, statuses[student].reason = GRADER_ERROR, "grader error: not executed"
        phases["execution"] = [r.seconds for r in results.values() if r.status != GRADER_ERROR]
        phases["judge"] = [r.judge_seconds for r in results.values() if r.status != GRADER_ERROR]
        phases["scoring"] = score_all(course, lab, config, staging, statuses, results,
                                      bars.bar("scoring", len(results)))
        for student in submitted:  # an invalid (re)submission must not keep an earlier score
            if statuses[student].status == INVALID:
                with deferred_interrupts():
                    record_ungradable(course, lab, student, statuses[student].reason)
                _score(course, lab, statuses[student])  # 0 / max, as recorded
        return GradeRun(lab, sandbox.sandboxed, [statuses[s] for s in sorted(statuses)], phases,
                        time.monotonic() - run_started)
    finally:
        bars.close()
        shutil.rmtree(staging, ignore_errors=True)


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


def score_all(course: Course, lab: str, config: Config, staging: Path,
              statuses: dict[str, StudentStatus], results: dict[str, ExecutionResult], bar=None) -> list[float]:
    """Phase 2: nbgrader autograde with the executed notebooks, one student at a time, one writer.

    Each student's update runs with Ctrl-C and SIGTERM held, so a record is never half written.
    Returns the seconds each student's scoring took."""
    scorer = scoring_api(config, staging)
    name = course.notebook_name(lab)
    seconds: list[float] = []
    for student, result in sorted(results.items()):
        status = statuses[student]
        status.seconds = round(result.seconds, 2)
        status.judge_seconds, status.judge_cpu = round(result.judge_seconds, 3), round(result.judge_cpu, 3)
        if result.status == GRADER_ERROR:  # not the student's doing: their previous grade stays
            status.status, status.reason = GRADER_ERROR, result.reason
            bar and bar.update(1)
            continue
        executed = staging / "executed" / student / f"{name}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(result.notebook, executed)
        began = time.monotonic()
        with deferred_interrupts():
            hand_graded = _hand_graded(course, lab, student)
            outcome = scorer.autograde(lab, student, force=True, create=True)
            if outcome["success"]:
                _keep_hand_grading(course, lab, student, hand_graded)
        seconds.append(time.monotonic() - began)
        bar and bar.update(1)
        if not outcome["success"]:
            status.status, status.reason = GRADER_ERROR, "grader error: " + _failure_reason(outcome)
            continue
        if result.status != "done":
            status.status, status.reason = result.status, result.reason
        _score(course, lab, status)
    return seconds


def write_status(course: Course, run: GradeRun, partial: bool = False) -> Path:
    """reports/<lab>/status.json; a regrade of some students (`partial`) updates only their entries."""
    path = course.root / "reports" / run.lab / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    students = {s.student: asdict(s) for s in run.students}
    if partial and path.exists():
        try:
            earlier = json.loads(path.read_text())["students"]
            students = {**{s["student"]: s for s in earlier}, **students}
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable old status is replaced
    data = {"lab": run.lab, "sandboxed": run.sandboxed, "seconds": round(run.seconds, 2),
            "phases": {k: [round(v, 3) for v in values] for k, values in run.phases.items()},
            "students": [students[s] for s in sorted(students)]}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def status_line(status: StudentStatus) -> str:
    score = "" if status.score is None else f"{status.score:g}/{status.max_score:g}"
    line = f"{terminal_safe(status.student, 60):<24} {status.status:<10} {score:>10}"
    if status.reason:
        line += f"  {terminal_safe(status.reason)}"
    if status.flags:
        line += f"  [flags: {terminal_safe('; '.join(status.flags))}]"
    return line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("--course", type=Path, default=REPO_ROOT, help="course directory (default: repo root)")
    parser.add_argument("--student", nargs="+", metavar="ID", help="regrade only these students")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="notebooks run at once")
    parser.add_argument("--timeout", type=float, default=Limits.timeout,
                        help="wall time for a whole notebook, seconds")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb,
                        help="address space per process, MB (torch alone reserves ~1.4 GB)")
    parser.add_argument("--no-sandbox", action="store_true", help="resource limits only, no bubblewrap")
    parser.add_argument("--no-warm", action="store_true",
                        help="start each executor when its notebook arrives (no warm pool)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the notebooks on a Dask cluster: its scheduler's address (tcp://host:8786), "
                             "a scheduler file (.json), or `config` (Dask's scheduler-address); see docs/scaling.md")
    parser.epilog = "exit codes: " + "; ".join(line.strip("| ").replace(" | ", ": ") for line in
                                               exits.__doc__.splitlines() if line.startswith("| ") and
                                               line[2].isdigit())


def _warn_unsandboxed() -> None:
    bar = "!" * 78
    print(f"{bar}\nWARNING: student notebooks run WITHOUT a sandbox (bubblewrap "
          f"{'missing' if bwrap_path() is None else 'disabled'}):\nthey can read the hidden tests, "
          f"the gradebook and other submissions, and use the network.\nOnly resource limits apply.\n{bar}",
          file=sys.stderr)


def check_limits(args: argparse.Namespace) -> Limits:
    """Limits that can work, or a UsageError saying which one cannot (before anything is touched)."""
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: at least one notebook must run at a time")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise UsageError(f"--timeout {args.timeout:g}: the time for a notebook must be a positive number of seconds")
    if args.memory < MIN_MEMORY_MB:
        raise UsageError(f"--memory {args.memory} MB cannot hold the lab's imports (torch alone reserves "
                         f"~1.4 GB of address space): use at least {MIN_MEMORY_MB} MB (default {Limits.memory_mb})")
    return Limits(timeout=args.timeout, memory_mb=args.memory)


@contextmanager
def course_lock(course: Course):
    """One grading run per course at a time: a second run is told, and touches nothing."""
    path = course.root / LOCK_NAME
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UsageError(f"another grading run is using {course.root} (pid {holder}): wait for it to "
                             "finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def main(args: argparse.Namespace) -> int:
    course = Course(args.course.resolve())
    limits = check_limits(args)
    require_lab(course, args.lab)
    started = time.monotonic()
    with course_lock(course), interrupts_as_keyboard_interrupt():
        run = grade_lab(course, args.lab, args.workers, limits, sandboxed=not args.no_sandbox,
                        warm=not args.no_warm, students=args.student, scheduler=args.scheduler)
    if not run.sandboxed:
        _warn_unsandboxed()
    else:
        print(f"sandbox bounds: {sandbox_limits.mechanism()}", file=sys.stderr)
    for status in run.students:
        print(status_line(status))
    path = write_status(course, run, partial=args.student is not None)
    kinds = (GRADED, TIMED_OUT, CRASHED, INVALID, MISSING, GRADER_ERROR)
    counts = {s: sum(1 for x in run.students if x.status == s) for s in kinds}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{args.lab}: {len(run.students)} students: {summary or 'no submissions'} in "
          f"{time.monotonic() - started:.1f} s ({'sandboxed' if run.sandboxed else 'NOT SANDBOXED'}); "
          f"status in {path}", file=sys.stderr)
    if counts[GRADER_ERROR]:
        return EXIT_FAILED
    return EXIT_OK if run.all_graded else EXIT_ATTENTION
