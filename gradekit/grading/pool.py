"""Where notebooks execute: N local sandboxes at a time, or a Dask cluster (`gradekit.grading.dask_pool`).

Each worker runs one notebook at a time under its judge (`gradekit.judge.driver.run_judged`) and keeps
the next sandbox warming up; whatever happens to a sandbox, the student's result reaches `on_done` once.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import nbformat

from gradekit.course.cells import NBGRADER_DEFAULTS, Delimiters
from gradekit.course.exits import ToolFailure
from gradekit.course.safe_text import terminal_safe
from gradekit.course.status import Status
from gradekit.grading.dask_pool import WORKERS_TIMEOUT, DaskPool, OnDone, SandboxSpec, connect
from gradekit.judge.driver import run_judged
from gradekit.sandbox.executors import ExecutionResult, RunningExecutor, copy_into
from gradekit.sandbox.launch import Sandbox


class ExecutionPool:
    """N workers; each runs one notebook at a time and keeps the next executor warming up.

    `abort()` (Ctrl-C, SIGTERM) kills every live executor at once; an executor that cannot start is
    replaced once, and if the second cannot start either the student is left as they were
    (a grader error: an infrastructure fault is never the student's zero)."""

    def __init__(self, sandbox: Sandbox, workers: int, warm: bool, on_done, expected: int,
                 program: dict[str, str], first: RunningExecutor | None = None,
                 delimiters: Delimiters = NBGRADER_DEFAULTS) -> None:
        self.sandbox = sandbox
        self.program, self.delimiters = program, delimiters
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
                self.on_done(student, ExecutionResult(Status.GRADER_ERROR, f"grader error: {problem}", nb, 0.0))
                continue
            try:
                copy_into(executor, files)
                result = run_judged(executor, nb, self.program, self.delimiters)
            except Exception as error:  # a broken executor must not stop the batch
                result = ExecutionResult(Status.GRADER_ERROR, f"grader error: {error}", nb, 0.0)
            finally:
                self._retire(executor)
            if self.aborted.is_set():
                continue
            self.on_done(student, result)
        if spare:
            self._retire(spare)


def execution_pool(sandbox: Sandbox, workers: int, warm: bool, on_done: OnDone, expected: int,
                   program: dict[str, str], first: RunningExecutor | None = None, scheduler: str | None = None,
                   sandboxed: bool | None = None, delimiters: Delimiters = NBGRADER_DEFAULTS):
    """The grader's execution pool: local processes by default, a Dask cluster when `scheduler` is given.

    `first` is the grader's pre-flight executor (a local kernel already up): the local pool grades
    with it; the Dask pool has no use for it (notebooks run on the workers) and stops it. Local
    grading imports nothing from Dask and starts no Dask process."""
    if not scheduler:
        return ExecutionPool(sandbox, workers, warm, on_done, expected=expected, program=program, first=first,
                             delimiters=delimiters)
    if first is not None:
        first.kill()
    try:
        client = connect(scheduler)
    except OSError as error:  # distributed's "Timed out trying to connect", refused, unknown host
        raise ToolFailure(f"the Dask scheduler {terminal_safe(scheduler, 200)} cannot be reached "
                          f"({terminal_safe(str(error).splitlines()[0] if str(error) else type(error).__name__, 200)})"
                          ": start it or check --scheduler; no grade was written") from None
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
    except TimeoutError:
        client.close()
        raise ToolFailure(f"no Dask worker joined the scheduler {terminal_safe(scheduler, 200)} within "
                          f"{WORKERS_TIMEOUT:g} s: start workers (docs/scaling.md); no grade was written") from None
    except Exception:
        client.close()
        raise
    return DaskPool(client, SandboxSpec.of(sandbox, sandboxed), on_done, program, delimiters=delimiters)
