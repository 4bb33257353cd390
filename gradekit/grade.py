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
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
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
    Execute,
    IgnorePattern,
    LimitOutput,
    NbGraderPreprocessor,
    SaveAutoGrades,
)
from traitlets import Unicode
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from gradekit import sandbox_limits
from gradekit.bounded import prepare_submission_bounded
from gradekit.course import REPO_ROOT, Course
from gradekit.judge import run_judged, trusted_program
from gradekit.repair import InvalidSubmission
from gradekit.safe_text import NeutralizeStudentContent, is_safe_student_id, terminal_safe
from gradekit.sandbox import ExecutionResult, Limits, Sandbox, bwrap_path, copy_into

GRADED, TIMED_OUT, CRASHED, INVALID, MISSING = "graded", "timed out", "crashed", "invalid", "missing"
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
    seconds: float | None = None


@dataclass
class GradeRun:
    lab: str
    sandboxed: bool
    students: list[StudentStatus]

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
    """N workers; each runs one notebook at a time and keeps the next executor warming up."""

    def __init__(self, sandbox: Sandbox, workers: int, warm: bool, on_done, expected: int,
                 program: dict[str, str]) -> None:
        self.sandbox = sandbox
        self.program = program
        self.warm = warm
        self.on_done = on_done
        self.jobs: queue.Queue = queue.Queue()
        # One executor serves one notebook: never start more than there are notebooks, so no
        # spare (a kernel with torch imported, seconds of CPU) is started only to be killed.
        self.starts_left = expected
        self.starts_lock = threading.Lock()
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

    def _start(self):
        with self.starts_lock:
            if self.starts_left <= 0:
                return None
            self.starts_left -= 1
        return self.sandbox.start()

    def _work(self) -> None:
        spare = self._start() if self.warm else None
        while (job := self.jobs.get()) is not None:
            student, files, nb = job
            executor = spare or self.sandbox.start()
            spare = self._start() if self.warm else None  # warms up while this one runs
            try:
                copy_into(executor, files)
                result = run_judged(executor, nb, self.program)
            except Exception as error:  # a broken executor must not stop the batch
                executor.kill()
                result = ExecutionResult(CRASHED, f"grader error: {error}", nb, 0.0)
            self.on_done(student, result)
        if spare:
            spare.kill()


# ---------------------------------------------------------------- the command


def students_of(course: Course, lab: str) -> tuple[list[str], list[str]]:
    """(students with a submission of `lab`, students known to the gradebook without one)."""
    # A folder name that could carry markup or control characters is not a student id (nbgrader's
    # formgrader shows ids unescaped): such a folder is left for the instructor to rename.
    submitted = sorted(p.parent.name for p in course.submitted.glob(f"*/{lab}")
                       if p.is_dir() and is_safe_student_id(p.parent.name))
    known: list[str] = []
    if course.gradebook.exists():
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


def grade_lab(course: Course, lab: str, workers: int, limits: Limits, sandboxed: bool = True,
              warm: bool = True, progress=sys.stderr) -> GradeRun:
    config = course_config(course)
    submitted, missing = students_of(course, lab)
    release_nb = _read_release(course, lab)
    staging = Path(tempfile.mkdtemp(prefix=f"gradekit-{lab}-"))
    try:
        shutil.copyfile(course.gradebook, staging / "gradebook-copy.db")
        sandbox = Sandbox(staging / "runs", limits, sandboxed, warm_modules(release_nb) if release_nb else [],
                          execute_settings(config))
        (staging / "runs").mkdir()
        statuses = {student: StudentStatus(student, MISSING, "no submission") for student in missing}
        results: dict[str, ExecutionResult] = {}
        done = threading.Lock()
        total = len(submitted)

        def on_done(student: str, result: ExecutionResult) -> None:
            with done:
                results[student] = result
                print(f"[{len(results)}/{total}] {terminal_safe(student, 60)}: executed, {result.status} "
                      f"({result.seconds:.1f} s)", file=progress, flush=True)

        program = trusted_program(course.db_url, lab, course.notebook_name(lab))
        pool = ExecutionPool(sandbox, workers, warm, on_done, expected=len(submitted), program=program)
        sanitizer = sanitize_api(config, staging)
        try:
            for student in submitted:
                statuses[student] = status = stage(course, lab, student, staging, release_nb)
                if status.status != GRADED:
                    continue
                outcome = sanitizer.autograde(lab, student, force=True, create=True)
                files = staging / "sanitized" / student / lab
                notebook = files / f"{course.notebook_name(lab)}.ipynb"
                if not outcome["success"] or not notebook.exists():
                    status.status, status.reason = INVALID, _failure_reason(outcome)
                    continue
                pool.submit(student, files, nbformat.read(notebook, as_version=4))
        finally:
            pool.close()
        for student in submitted:  # a worker that failed must not leave a student "graded"
            if statuses[student].status == GRADED and student not in results:
                statuses[student].status, statuses[student].reason = CRASHED, "grader error: not executed"
        score_all(course, lab, config, staging, statuses, results)
        return GradeRun(lab, sandbox.sandboxed, [statuses[s] for s in sorted(statuses)])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def score_all(course: Course, lab: str, config: Config, staging: Path,
              statuses: dict[str, StudentStatus], results: dict[str, ExecutionResult]) -> None:
    """Phase 2: nbgrader autograde with the executed notebooks, one student at a time, one writer."""
    scorer = scoring_api(config, staging)
    name = course.notebook_name(lab)
    for student, result in sorted(results.items()):
        status = statuses[student]
        status.seconds = round(result.seconds, 2)
        executed = staging / "executed" / student / f"{name}.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(result.notebook, executed)
        outcome = scorer.autograde(lab, student, force=True, create=True)
        if not outcome["success"]:
            status.status, status.reason = CRASHED, _failure_reason(outcome)
            continue
        if result.status != "done":
            status.status, status.reason = result.status, result.reason
        _score(course, lab, status)


def write_status(course: Course, run: GradeRun) -> Path:
    path = course.root / "reports" / run.lab / "status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"lab": run.lab, "sandboxed": run.sandboxed, "students": [asdict(s) for s in run.students]}
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
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="notebooks run at once")
    parser.add_argument("--timeout", type=float, default=Limits.timeout,
                        help="wall time for a whole notebook, seconds")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb,
                        help="address space per process, MB (torch alone reserves ~1.4 GB)")
    parser.add_argument("--no-sandbox", action="store_true", help="resource limits only, no bubblewrap")
    parser.add_argument("--no-warm", action="store_true",
                        help="start each executor when its notebook arrives (no warm pool)")


def _warn_unsandboxed() -> None:
    bar = "!" * 78
    print(f"{bar}\nWARNING: student notebooks run WITHOUT a sandbox (bubblewrap "
          f"{'missing' if bwrap_path() is None else 'disabled'}):\nthey can read the hidden tests, "
          f"the gradebook and other submissions, and use the network.\nOnly resource limits apply.\n{bar}",
          file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    course = Course(args.course.resolve())
    limits = Limits(timeout=args.timeout, memory_mb=args.memory)
    started = time.monotonic()
    run = grade_lab(course, args.lab, args.workers, limits, sandboxed=not args.no_sandbox,
                    warm=not args.no_warm)
    if not run.sandboxed:
        _warn_unsandboxed()
    else:
        print(f"sandbox bounds: {sandbox_limits.mechanism()}", file=sys.stderr)
    for status in run.students:
        print(status_line(status))
    path = write_status(course, run)
    counts = {s: sum(1 for x in run.students if x.status == s) for s in (GRADED, TIMED_OUT, CRASHED, INVALID,
                                                                           MISSING)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{args.lab}: {summary or 'no submissions'} in {time.monotonic() - started:.1f} s "
          f"({'sandboxed' if run.sandboxed else 'NOT SANDBOXED'}); status in {path}", file=sys.stderr)
    return 0 if run.all_graded else 1
