"""`python -m gradekit grade <lab>`: grade every submission, in parallel, sandboxed.

How, and why scores equal plain `nbgrader autograde`:
1. Stage: each `submitted/<student>/<lab>/` is copied (regular files only) into a private
   staging dir and repaired there with `gradekit.staging.repair.prepare_submission`; submitted/ is
   never written.
2. Sanitize: nbgrader's own Autograde converter with its sanitize preprocessors (ClearOutput,
   DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata) against a *copy* of
   the gradebook, and no autograde preprocessors. Steps 1-2 run in nbgrader worker processes
   (`gradekit.scoring.nbgrader_steps`; one, or one per 8 cores: `--stagers`) while notebooks execute.
3. Execute (N at a time, untrusted): each sanitized notebook runs in a sandboxed executor
   (`gradekit.sandbox.executors`) that drives nbgrader's own `Execute` preprocessor with the course's
   settings, judged cell by cell by `gradekit.judge.judge` in this process. Each sandbox is forked
   from a zygote that imported the lab's modules once (`gradekit/untrusted/zygote.py`).
4. Score (in the first of those processes, the only gradebook writer on SQLite; one per 8 cores on a
   server gradebook: `--scorers`; as each notebook finishes): nbgrader's
   Autograde again, on the real gradebook, with `Execute` replaced by `LookupExecute`, which hands
   back the notebook executed in step 3 after checking that it is the same notebook cell by
   cell. Saving grades, late penalties and manual grades stay nbgrader's.
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat
from nbgrader.preprocessors import Execute
from traitlets.config import Config

from gradekit.course.backup import backup
from gradekit.course.cells import Delimiters
from gradekit.course.directory import Course
from gradekit.course.exits import ToolFailure, UsageError, deferred_interrupts
from gradekit.course.gradebook import private_copy
from gradekit.course.ledger import tests_digest
from gradekit.course.safe_text import is_safe_student_id, terminal_safe
from gradekit.course.status import SCORED, Status, StatusFile, StudentStatus
from gradekit.grading.kept import OWNER_FILE, STAGING_PREFIX, KeptLabs, LabResources
from gradekit.grading.nbgrader_worker import Scoring, StepsWorker, WorkerThreads, read_release
from gradekit.grading.pool import execution_pool
from gradekit.grading.progress import Progress
from gradekit.judge import process as judges
from gradekit.judge.judge import trusted_program
from gradekit.sandbox import limits as sandbox_limits
from gradekit.sandbox.executors import IMPORTS_FAILED, ExecutionResult, RunningExecutor
from gradekit.sandbox.launch import Sandbox
from gradekit.sandbox.runtime import KernelRuntime, RuntimeMissing, course_runtime
from gradekit.sandbox.settings import Limits
from gradekit.scoring.autograde import record_score
from gradekit.scoring.hand_grades import settle_lab
from gradekit.scoring.ungradable import record_ungradable

MIN_MEMORY_MB = 512
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
    retried: list[str] = field(default_factory=list)  # ran again alone: a death they may not have caused, or a
    # timeout while other notebooks shared the machine
    runtime: str = ""  # the kernel runtime the notebooks ran in (`KernelRuntime.label`)

    @property
    def all_graded(self) -> bool:
        return bool(self.students) and all(s.status == Status.GRADED for s in self.students)

    def status_file(self) -> StatusFile:
        return StatusFile(self.lab, self.sandboxed, self.seconds, self.phases, {s.student: s for s in self.students})


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


# ---------------------------------------------------------------- the command


def students_of(course: Course, lab: str) -> tuple[list[str], list[str]]:
    """(students with a submission of `lab`, students known to the gradebook without one)."""
    # A folder name that could carry markup or control characters is not a student id (nbgrader's
    # formgrader shows ids unescaped): such a folder is left for the instructor to rename.
    submitted = sorted(p.parent.name for p in course.submitted.glob(f"*/{lab}")
                       if p.is_dir() and is_safe_student_id(p.parent.name))
    known: list[str] = []
    if course.has_gradebook():
        with course.open_gradebook() as gb:
            known = [s.id for s in gb.students]
    return submitted, sorted(set(known) - set(submitted))


def preflight(sandbox: Sandbox) -> RunningExecutor:
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
        if problem.startswith(IMPORTS_FAILED):  # the lab needs a module its kernel runtime does not have
            raise UsageError(f"{message}. The kernel runtime ({sandbox.runtime.label}) lacks a module the lab "
                             "imports: pin it in the runtime's pins file (docs/runtime.md) or remove the import")
        raise ToolFailure(message + ". Check that bubblewrap works (`bwrap --ro-bind / / true`) and the limits.")
    return executor


def plan_resources(config: Config, release_nb: nbformat.NotebookNode | None, runtime: KernelRuntime, workers: int,
                   limits: Limits, sandboxed: bool, warm: bool, processes: int,
                   local: bool = True) -> tuple[Limits, dict, tuple]:
    """What a run opens (`LabResources`): the notebooks' limits, the sandbox's settings, and the key they are a
    function of (a kept set, `gradekit serve`, serves only a run that would open the same)."""
    if limits.threads is None and local:  # each notebook its share of this machine's cores
        limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // workers))
    settings = execute_settings(config)
    modules = warm_modules(release_nb) if release_nb else []
    sandbox_settings = {"limits": limits, "sandboxed": sandboxed, "execute_settings": settings, "fork": warm,
                        "warm_modules": modules, "runtime": runtime}
    key = (runtime.key, tuple(modules), repr(sorted(settings.items())), limits, sandboxed, warm, processes)
    return limits, sandbox_settings, key


def warm_up(course: Course, lab: str, kept_labs: KeptLabs, workers: int | None = None,
            limits: Limits | None = None) -> str:
    """Open what `grade LAB` with these settings (default: grade's) would, ready, and keep it in `kept_labs`
    (`gradekit serve`, before its first command): "" or why not. Reads nothing of a student's."""
    workers, limits = workers or default_workers(), limits or Limits()
    release_nb = read_release(course, lab)
    try:
        runtime = course_runtime(course.root)
    except RuntimeMissing as missing:
        return str(missing)
    processes = max(check_stagers(None), check_scorers(course, None))
    limits, sandbox_settings, key = plan_resources(course.config(), release_nb, runtime, workers, limits, True,
                                                   True, processes)
    resources = LabResources.open(key, course, lab, sandbox_settings, processes)
    try:
        resources.sandbox.prepare()  # both zygotes import at once
        judge = judges.zygote_for(trusted_program(course.db_url, lab, course.notebook_name(lab)), limits)
        problem = resources.sandbox.ready() or judge.ready()
    except BaseException:
        resources.close()
        raise
    if problem:
        resources.close()
        return problem
    kept_labs.give_back(lab, resources, served=False)
    return ""


def grade_lab(course: Course, lab: str, workers: int, limits: Limits, sandboxed: bool = True,
              warm: bool = True, progress=sys.stderr, students: list[str] | None = None,
              scheduler: str | None = None, scorers: int | None = None, stagers: int | None = None,
              kept_labs: KeptLabs | None = None) -> GradeRun:
    """Grade `lab` (every submission, or only `students`); gradebook records are written whole per student.

    `kept_labs` (`gradekit serve`): the run uses the lab's resources kept warm from an earlier run when they are
    what it would open, and gives them back after it for the next (`gradekit.grading.kept`)."""
    scorers, stagers = check_scorers(course, scorers), check_stagers(stagers)
    config = course.config()
    submitted, missing = students_of(course, lab)
    if students is not None:
        unknown = sorted(set(students) - set(submitted))
        if unknown:
            raise UsageError(f"no submission of {lab} in {course.submitted} for: "
                             f"{', '.join(terminal_safe(s, 60) for s in unknown)}")
        submitted, missing = sorted(set(students)), []
    release_nb = read_release(course, lab)
    try:
        runtime = course_runtime(course.root)  # the environment the notebooks run in (course.toml [runtime])
    except RuntimeMissing as missing:
        raise UsageError(f"{missing}; no grade was written") from None
    processes = max(stagers, scorers) if submitted else 0  # nbgrader's passes, in their own processes
    limits, sandbox_settings, key = plan_resources(config, release_nb, runtime, workers, limits, sandboxed, warm,
                                                   processes, local=scheduler is None)
    sweep_leftovers()
    bars = Progress(progress, len(submitted))
    kept = kept_labs if kept_labs is not None and submitted and scheduler is None else None
    resources = kept.take(lab, key) if kept is not None else None
    finished = False
    try:
        resources = resources or LabResources.open(key, course, lab, sandbox_settings, processes)
        staging, sandbox, steps = resources.staging, resources.sandbox, resources.steps
        if submitted and scheduler is None:
            sandbox.prepare()  # the zygote's imports (seconds) start now, beside what follows (kept: running)
        private_copy(course, staging / "gradebook-copy.db")  # sanitizing writes: never to the real gradebook
        with course.open_gradebook() as gradebook:
            tests = tests_digest(gradebook, lab)  # the ledger: the tests these grades are a function of
        program = trusted_program(course.db_url, lab, course.notebook_name(lab))
        delimiters = Delimiters.from_config(config)  # nbgrader's own: what the release hid, the kernel never gets
        if submitted and scheduler is None:  # the judges' zygote imports (~2 s) while the sandboxes' does
            judges.prestart(program, limits)
        statuses = {student: StudentStatus(student, Status.MISSING, "no submission") for student in missing}
        phases: dict[str, list[float]] = {"staging": [], "execution": [], "judge": [], "scoring": []}
        # On a Dask cluster the workers' sandboxes are checked by the cluster (a failure there is a
        # grader error for that student, never a zero); here, locally, before any grade is written.
        first = preflight(sandbox) if submitted and scheduler is None else None
        # Nothing refused: before the first write, a copy of the gradebook (`gradekit restore`), and the hand
        # grades a killed run left pending put back.
        backup(course, f"grade-{lab}")
        settle_lab(course, lab)
        run_started = time.monotonic()
        staging_bar, execution_bar = bars.bar("staging", len(submitted)), bars.bar("executing", len(submitted))
        scoring_bar = bars.bar("scoring", len(submitted))
        scoring = Scoring(steps[:scorers], course, lab, staging, statuses, phases, scoring_bar)
        done = threading.Lock()

        staged: dict[str, tuple[Path, nbformat.NotebookNode]] = {}
        retry: list[str] = []
        retried: set[str] = set()
        # Fair timeouts: a notebook that timed out while other notebooks shared the machine may have been starved
        # by them rather than slow; it runs again alone, and that run decides (its status says so).
        shared = workers > 1 and len(submitted) > 1
        timed_out_shared: set[str] = set()

        def on_done(student: str, result: ExecutionResult) -> None:
            # A death the student may not have caused (the executor or zygote gone, a kill from outside), or a
            # timeout beside other notebooks, is not scored now: the notebook runs again, alone, once the others
            # are done.
            timed_out = shared and result.status == Status.TIMED_OUT
            if student not in retried and (maybe_not_the_students(result) or timed_out):
                with done:
                    retry.append(student)
                    if timed_out:
                        timed_out_shared.add(student)
                return
            with done:
                detail = f" ({terminal_safe(result.reason, 80)})" if result.status == Status.GRADER_ERROR else ""
                execution_bar.set_postfix_str(f"{terminal_safe(student, 30)}: {result.status}{detail}",
                                              refresh=False)
                execution_bar.update(1)
            scoring.submit(student, result)  # scored as soon as it is executed, while others run

        # Local processes, or a Dask cluster with --scheduler (execution only: scoring stays here).
        pool = execution_pool(sandbox, workers, warm, on_done, expected=len(submitted), program=program,
                              first=first, scheduler=scheduler, sandboxed=sandboxed,
                              delimiters=delimiters)
        def stage_student(worker: StepsWorker, student: str) -> None:
            began = time.monotonic()
            answer = worker.run({"op": "stage", "student": student})
            statuses[student] = status = StudentStatus(**answer["status"])
            staging_bar.update(1)
            if status.status == Status.GRADED and answer["notebook"]:
                files = Path(answer["notebook"]).parent
                staged[student] = (files, nbformat.read(answer["notebook"], as_version=4))
                pool.submit(student, files, copy.deepcopy(staged[student][1]))
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
            pool.close()  # every notebook executed (and handed to the scorer), but those to run again
            if retry:  # one at a time: whatever took the first run down (memory, a kill) is not repeated
                retried.update(retry)
                pool = execution_pool(sandbox, 1, warm, on_done, expected=len(retry), program=program,
                                      scheduler=scheduler, sandboxed=sandboxed, delimiters=delimiters)
                for student in list(retry):
                    pool.submit(student, *staged[student])
                pool.close()
        except BaseException:
            staging_run.stop()  # the students in hand are staged; no other starts
            pool.abort()
            scoring.stop()  # the student in hand is written whole; no other starts
            pool.close()
            raise
        scoring.finish()
        for student in sorted(timed_out_shared):
            status = statuses[student]
            status.reason = "; ".join(filter(None, [status.reason, DECIDED_ALONE]))
        for student in submitted:  # a worker that failed must not leave a student "graded"
            if statuses[student].status == Status.GRADED and student not in scoring.results:
                statuses[student].status, statuses[student].reason = Status.GRADER_ERROR, "grader error: not executed"
        for student in submitted:  # an invalid (re)submission must not keep an earlier score
            if statuses[student].status == Status.INVALID:
                with deferred_interrupts():
                    record_ungradable(course, lab, student, statuses[student].reason)
                record_score(course, lab, statuses[student])  # 0 / max, as recorded
        for status in statuses.values():
            status.tests_digest = tests
            if status.status in SCORED:  # the notebook ran, in this runtime
                status.runtime = runtime.label
        finished = True
        return GradeRun(lab, sandbox.sandboxed, [statuses[s] for s in sorted(statuses)], phases,
                        time.monotonic() - run_started, sorted(retried), runtime.label)
    finally:
        bars.close()
        if kept is not None and finished:
            kept.give_back(lab, resources)  # warm for the next run (`gradekit serve`)
        else:
            if resources is not None:
                resources.close()
            if kept is None:
                judges.stop_zygotes()


DECIDED_ALONE = "decided by a run alone (the first run timed out while other notebooks shared the machine)"
# How a notebook ends when something outside it may have ended it: a kill signal, the kernel or its executor
# gone. Its own doing (an exception, exceeding its memory or output, os._exit) reads otherwise.
OUTSIDE_DEATH = re.compile(r"killed by SIG(KILL|TERM|HUP|INT|QUIT)|kernel died|executor died|sandbox stopped|"
                           r"grader error")


def maybe_not_the_students(result: ExecutionResult) -> bool:
    """Whether a notebook's end may not be the student's doing, so that it runs again before it counts."""
    return result.status == Status.GRADER_ERROR or (result.status == Status.CRASHED
                                                      and bool(OUTSIDE_DEATH.search(result.reason)))


def sweep_leftovers() -> list[str]:
    """What runs killed outright (SIGKILL, a host crash) left: staging folders (every submission, the hidden
    tests) whose run is gone, their tmpfs mounts, and their cgroups. Returns the folders removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*"):
        owner = folder / OWNER_FILE
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue  # not a staging folder of ours, or still being created
        if sandbox_limits.pid_alive(pid):
            continue
        for point in sandbox_limits.mounts_below(folder):
            sandbox_limits.unmount_workdir(point)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name)
    sandbox_limits.sweep_stale_groups()
    return removed


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
