"""`python -m gradekit grade <lab>`: grade every submission, in parallel, sandboxed.

How, and why scores equal plain `nbgrader autograde`:
1. Stage: each `submitted/<student>/<lab>/` is copied (regular files only) into a private
   staging dir and repaired there with `gradekit.repair.prepare_submission`; submitted/ is
   never written.
2. Sanitize: nbgrader's own Autograde converter with its sanitize preprocessors (ClearOutput,
   DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata) against a *copy* of
   the gradebook, and no autograde preprocessors. Steps 1-2 run in nbgrader worker processes
   (`gradekit.nbgrader_steps`; one, or one per 8 cores: `--stagers`) while notebooks execute.
3. Execute (N at a time, untrusted): each sanitized notebook runs in a sandboxed executor
   (`gradekit.sandbox`) that drives nbgrader's own `Execute` preprocessor with the course's
   settings, judged cell by cell by `gradekit.judge` in this process. Each sandbox is forked
   from a zygote that imported the lab's modules once (`gradekit/untrusted/zygote.py`).
4. Score (in the first of those processes, the only gradebook writer on SQLite; one per 8 cores on a
   server gradebook: `--scorers`; as each notebook finishes): nbgrader's
   Autograde again, on the real gradebook, with `Execute` replaced by `LookupExecute`, which hands
   back the notebook executed in step 3 after checking that it is the same notebook cell by
   cell. Saving grades, late penalties and manual grades stay nbgrader's.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import json
import math
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import nbformat
import torch
from nbgrader.api import Gradebook
from nbgrader.preprocessors import (
    Execute,
)
from tqdm import tqdm
from traitlets.config import Config

from gradekit import exits, sandbox_limits
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
from gradekit.judge import import_for_judge, run_judged, trusted_program
from gradekit.lms.gradebook import record_ungradable
from gradekit.nbgrader_steps import (  # noqa: F401 - re-exported: tests and the lms commands name them here
    CRASHED,
    GRADED,
    GRADER_ERROR,
    INVALID,
    MISSING,
    TIMED_OUT,
    LookupExecute,
    StepsWorker,
    StudentStatus,
    _read_release,
    _score,
    course_config,
    sanitize_api,
    scoring_api,
    stage,
)
from gradekit.safe_text import is_safe_student_id, terminal_safe
from gradekit.sandbox import ExecutionResult, Limits, RunningExecutor, Sandbox, bwrap_path, copy_into

MIN_MEMORY_MB = 512
LOCK_NAME = ".gradekit-grade.lock"
EXECUTE_SETTINGS = ("timeout", "interrupt_on_timeout", "raise_on_iopub_timeout", "error_on_timeout",
                    "extra_arguments", "allow_errors", "startup_timeout", "iopub_timeout")


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


# ---------------------------------------------------------------- configuration


def execute_settings(config: Config) -> dict:
    """The course's `Execute` settings, for the executor in the sandbox."""
    execute = Execute(config=config)
    return {name: getattr(execute, name) for name in EXECUTE_SETTINGS if execute.has_trait(name)}


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
        elif counted:  # a spare: ready by the time the worker's current notebook is done
            executor.warm()
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
              scheduler: str | None = None, scorers: int | None = None, stagers: int | None = None) -> GradeRun:
    """Grade `lab` (every submission, or only `students`); gradebook records are written whole per student."""
    scorers, stagers = check_scorers(course, scorers), check_stagers(stagers)
    config = course_config(course)
    submitted, missing = students_of(course, lab)
    if students is not None:
        unknown = sorted(set(students) - set(submitted))
        if unknown:
            raise UsageError(f"no submission of {lab} in {course.submitted} for: "
                             f"{', '.join(terminal_safe(s, 60) for s in unknown)}")
        submitted, missing = sorted(set(students)), []
    release_nb = _read_release(course, lab)
    if limits.threads is None and scheduler is None:  # each notebook its share of this machine's cores
        limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // workers))
        torch.set_num_threads(1)  # the judge's references are small: beside the notebooks, one thread
    staging = Path(tempfile.mkdtemp(prefix=f"gradekit-{lab}-"))
    bars = Progress(progress, len(submitted))
    sandbox: Sandbox | None = None
    steps: list[StepsWorker] = []
    try:
        sandbox = Sandbox(staging / "runs", limits, sandboxed, warm_modules(release_nb) if release_nb else [],
                          execute_settings(config), fork=warm)
        (staging / "runs").mkdir()
        if submitted and scheduler is None:
            sandbox.prepare()  # the zygote's imports (seconds) start now, beside what follows
        if submitted:  # nbgrader's passes, in their own processes: the first stagers also score
            steps = [StepsWorker(course, lab, staging, f"nbgrader{n}" if n else "nbgrader")
                     for n in range(max(stagers, scorers))]
        private_copy(course, staging / "gradebook-copy.db")  # sanitizing writes: never to the real gradebook
        program = trusted_program(course.db_url, lab, course.notebook_name(lab))
        if submitted:
            import_for_judge(program)  # while the zygote starts: the judge's first student then waits less
        statuses = {student: StudentStatus(student, MISSING, "no submission") for student in missing}
        phases: dict[str, list[float]] = {"staging": [], "execution": [], "judge": [], "scoring": []}
        # On a Dask cluster the workers' sandboxes are checked by the cluster (a failure there is a
        # grader error for that student, never a zero); here, locally, before any grade is written.
        first = preflight(sandbox, limits) if submitted and scheduler is None else None
        run_started = time.monotonic()
        staging_bar, execution_bar = bars.bar("staging", len(submitted)), bars.bar("executing", len(submitted))
        scoring_bar = bars.bar("scoring", len(submitted))
        scoring = Scoring(steps[:scorers], course, lab, staging, statuses, phases, scoring_bar)
        done = threading.Lock()

        def on_done(student: str, result: ExecutionResult) -> None:
            with done:
                detail = f" ({terminal_safe(result.reason, 80)})" if result.status == GRADER_ERROR else ""
                execution_bar.set_postfix_str(f"{terminal_safe(student, 30)}: {result.status}{detail}",
                                              refresh=False)
                execution_bar.update(1)
            scoring.submit(student, result)  # scored as soon as it is executed, while others run

        # Local processes, or a Dask cluster with --scheduler (execution only: scoring stays here).
        pool = execution_pool(sandbox, workers, warm, on_done, expected=len(submitted), program=program,
                              first=first, scheduler=scheduler, sandboxed=sandboxed)
        def stage_student(worker: StepsWorker, student: str) -> None:
            began = time.monotonic()
            answer = worker.run({"op": "stage", "student": student})
            statuses[student] = status = StudentStatus(**answer["status"])
            staging_bar.update(1)
            if status.status == GRADED and answer["notebook"]:
                files = Path(answer["notebook"]).parent
                pool.submit(student, files, nbformat.read(answer["notebook"], as_version=4))
                phases["staging"].append(time.monotonic() - began)
                return
            with done:  # not executed: counted at once, so that the bars end at the number of students
                execution_bar.update(1)
                scoring_bar.update(1)

        staging_run = WorkerThreads(steps[:stagers], stage_student)  # in order, one student per process at a time
        try:
            for student in submitted:
                staging_run.submit(student)
            staging_run.finish()
            pool.close()  # every notebook executed (and handed to the scorer)
        except BaseException:
            staging_run.stop()  # the students in hand are staged; no other starts
            pool.abort()
            scoring.stop()  # the student in hand is written whole; no other starts
            pool.close()
            raise
        scoring.finish()
        for student in submitted:  # a worker that failed must not leave a student "graded"
            if statuses[student].status == GRADED and student not in scoring.results:
                statuses[student].status, statuses[student].reason = GRADER_ERROR, "grader error: not executed"
        for student in submitted:  # an invalid (re)submission must not keep an earlier score
            if statuses[student].status == INVALID:
                with deferred_interrupts():
                    record_ungradable(course, lab, student, statuses[student].reason)
                _score(course, lab, statuses[student])  # 0 / max, as recorded
        return GradeRun(lab, sandbox.sandboxed, [statuses[s] for s in sorted(statuses)], phases,
                        time.monotonic() - run_started)
    finally:
        bars.close()
        for worker in steps:
            worker.close()
        if sandbox is not None:
            sandbox.close()
        shutil.rmtree(staging, ignore_errors=True)


class WorkerThreads:
    """One thread per nbgrader worker process, each handing it queued items one at a time (`handle(worker,
    *item)`). `finish()` waits until every item is handled and raises the first error (items after it
    are dropped); `stop()` lets the items in hand finish and drops the rest."""

    def __init__(self, workers: list[StepsWorker], handle: Callable[..., None]) -> None:
        self.handle = handle
        self.queue: queue.Queue = queue.Queue()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._work, args=(worker,), daemon=True) for worker in workers]
        for thread in self.threads:
            thread.start()

    def submit(self, *item) -> None:
        self.queue.put(item)

    def _work(self, worker: StepsWorker) -> None:
        while (item := self.queue.get()) is not None:
            if self.stopped.is_set() or self.error is not None:
                continue
            try:
                self.handle(worker, *item)
            except BaseException as error:  # noqa: BLE001 - raised by finish() in the grader's thread
                self.error = self.error or error

    def _join(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def stop(self) -> None:
        self.stopped.set()
        self._join()

    def finish(self) -> None:
        self._join()
        if self.error is not None:
            raise self.error


class Scoring(WorkerThreads):
    """Scores each executed notebook as it arrives (`submit(student, result)`), in the nbgrader worker
    processes: one (SQLite takes one writer at a time) or several on a server gradebook, each on its own
    sessions, one student's record at a time each."""

    def __init__(self, scorers: list[StepsWorker], course: Course, lab: str, staging: Path,
                 statuses: dict[str, StudentStatus], phases: dict[str, list[float]], bar) -> None:
        self.course, self.lab, self.staging = course, lab, staging
        self.statuses, self.phases, self.bar = statuses, phases, bar
        self.results: dict[str, ExecutionResult] = {}
        super().__init__(scorers, self._score)

    def _score(self, scorer: StepsWorker, student: str, result: ExecutionResult) -> None:
        self.results[student] = result
        status = self.statuses[student]
        status.seconds = round(result.seconds, 2)
        status.judge_seconds, status.judge_cpu = round(result.judge_seconds, 3), round(result.judge_cpu, 3)
        if result.status == GRADER_ERROR:  # not the student's doing: their previous grade stays
            status.status, status.reason = GRADER_ERROR, result.reason
        else:
            self.phases["execution"].append(result.seconds)
            self.phases["judge"].append(result.judge_seconds)
            executed = self.staging / "executed" / student / f"{self.course.notebook_name(self.lab)}.ipynb"
            executed.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(result.notebook, executed)
            answer = scorer.run({"op": "score", "student": student, "outcome_status": result.status,
                                 "outcome_reason": result.reason})
            self.phases["scoring"].append(answer["seconds"])
            status.status, status.reason = answer["status"], answer["reason"]
            status.score, status.max_score = answer["score"], answer["max_score"]
        self.bar.update(1)


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


def default_workers() -> int:
    return (os.cpu_count() or 1) + 1


def one_per_8_cores(cores: int | None = None) -> int:
    """Processes for nbgrader's passes beside the notebooks: one per 8 cores, at least 1, at most 8 (a pass
    takes ~0.15-0.45 s a notebook, executing it ~1.5 s: one process keeps up with about eight workers)."""
    return max(1, min(8, (cores or os.cpu_count() or 1) // 8))


def check_scorers(course: Course, scorers: int | None) -> int:
    """How many processes score at once: one on SQLite (one writer at a time), and on a server gradebook
    one per 8 cores (scoring a notebook takes ~0.3 s, executing it ~2 s: one scorer keeps up with 6-8
    workers), at most 8."""
    if scorers is None:
        return 1 if course.is_sqlite else one_per_8_cores()
    if scorers < 1:
        raise UsageError(f"--scorers {scorers}: at least one process must score")
    if scorers > 1 and course.is_sqlite:
        raise UsageError(f"--scorers {scorers}: a SQLite gradebook takes one writer at a time; several scorers "
                         "need a server gradebook (c.CourseDirectory.db_url, e.g. PostgreSQL: docs/scaling.md)")
    return scorers


def check_stagers(stagers: int | None) -> int:
    """How many processes stage (copy, repair, sanitize) at once: `one_per_8_cores()` unless chosen."""
    if stagers is None:
        return one_per_8_cores()
    if stagers < 1:
        raise UsageError(f"--stagers {stagers}: at least one process must stage")
    return stagers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("--course", type=Path, default=REPO_ROOT, help="course directory (default: repo root)")
    parser.add_argument("--student", nargs="+", metavar="ID", help="regrade only these students")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="notebooks run at once (default: one more than the cores, %(default)s here: a "
                             "notebook waiting on its judge leaves its core to the next)")
    parser.add_argument("--timeout", type=float, default=Limits.timeout,
                        help="wall time for a whole notebook, seconds")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb,
                        help="address space per process, MB (the lab's imports take ~0.9 GB with one thread)")
    parser.add_argument("--scorers", type=int, default=None,
                        help="processes scoring at once (default: 1 on SQLite; on a server gradebook one per 8 "
                             "cores)")
    parser.add_argument("--stagers", type=int, default=None,
                        help="processes staging (copy, repair, sanitize) at once (default: one per 8 cores; raise "
                             "it when the notebooks run on a Dask cluster)")
    parser.add_argument("--no-sandbox", action="store_true", help="resource limits only, no bubblewrap")
    parser.add_argument("--no-warm", action="store_true",
                        help="start each sandbox cold (its own bwrap and imports) instead of forking it from "
                             "the zygote that imported the lab's modules once")
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
        raise UsageError(f"--memory {args.memory} MB cannot hold the lab's imports (~0.9 GB of address space "
                         f"with one thread): use at least {MIN_MEMORY_MB} MB (default {Limits.memory_mb})")
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
    check_scorers(course, args.scorers)
    check_stagers(args.stagers)
    started = time.monotonic()
    with course_lock(course), interrupts_as_keyboard_interrupt():
        run = grade_lab(course, args.lab, args.workers, limits, sandboxed=not args.no_sandbox,
                        warm=not args.no_warm, students=args.student, scheduler=args.scheduler,
                        scorers=args.scorers, stagers=args.stagers)
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
