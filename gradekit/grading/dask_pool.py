"""Grading on a Dask cluster: the sandboxed execution of each notebook, and its judge, on Dask workers.

Only execution leaves the grading process. Staging, repair, sanitizing and scoring stay where they
are (`gradekit.grading.run`), so the gradebook keeps one writer per grading run and workers never need
the database, the course directory or a shared disk. A task carries everything it needs:

- the sanitized notebook (hidden tests included: the judge on the worker needs them; the kernel
  never gets them, as locally), as JSON;
- the submission's other files as bytes (few and small: capped by `MAX_FILES` and `MAX_BYTES`);
- the judge's trusted program and the sandbox settings (limits, warm modules, Execute settings).

On the worker, the task does what a local pool thread does (`Sandbox(...).start()`, `copy_into`,
`run_judged`) in a private scratch directory, and returns the executed notebook as JSON. The judge
runs on the worker, outside the sandbox, as trusted code, exactly as it runs in the grader locally.

A worker lost mid-task (node preempted, process killed): the scheduler runs the task again on
another worker (`distributed.scheduler.allowed-failures` times, default 3). The task is idempotent
(a fresh scratch directory and sandbox each attempt, no write anywhere else), and a task's future
resolves once, so each student's result reaches `on_done` exactly once and is scored once. A task
that still fails is a grader error for that student (not scored: their previous grade stays, as
for a local executor that cannot start), never a grade.

A worker that was asked for a sandbox and has no bubblewrap refuses the task (a grader error, with
the reason) rather than run student code unconfined.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import NBGRADER_DEFAULTS, Delimiters
from gradekit.course.exits import UsageError
from gradekit.course.status import Status
from gradekit.judge.driver import run_judged
from gradekit.sandbox.executors import ExecutionResult, copy_into, mark_not_run
from gradekit.sandbox.launch import Sandbox
from gradekit.sandbox.limits import unmount_workdir
from gradekit.sandbox.runtime import KernelRuntime, RuntimeMissing
from gradekit.sandbox.settings import Limits

MAX_FILES = 64  # a lab's submission is a notebook and perhaps a data file or two
MAX_BYTES = 16 * 1024 * 1024  # all files of one submission together (nbgrader caps each at max_file_size)
TASK_RETRIES = 1  # a task that raises (not a notebook that fails: that is a result) runs once more
CONNECT_TIMEOUT = "30s"
WORKERS_TIMEOUT = 120.0  # seconds to wait for the first worker before grading fails
SCRATCH_PREFIX = "gradekit-dask-"

OnDone = Callable[[str, ExecutionResult], None]


class SubmissionTooLarge(ValueError):
    """The submission's files exceed what a task may carry to a worker."""


@dataclass(frozen=True)
class SandboxSpec:
    """What a worker needs to build the same `Sandbox` as the grader (a Sandbox holds a lock: not picklable)."""

    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True
    warm_modules: tuple[str, ...] = ()
    execute_settings: dict = field(default_factory=dict)
    runtime: tuple[str, str, str] | None = None  # `KernelRuntime.key`: each worker runs its own build of it

    @classmethod
    def of(cls, sandbox: Sandbox, sandboxed: bool | None = None) -> SandboxSpec:
        # `sandboxed` is what was asked for: the grader's machine may lack bwrap while the workers have it.
        return cls(sandbox.limits, sandbox.sandboxed if sandboxed is None else sandboxed,
                   tuple(sandbox.warm_modules), dict(sandbox.execute_settings), sandbox.runtime.key)


# ---------------------------------------------------------------- files travel with the task


def pack_files(files: Path) -> dict[str, bytes]:
    """The submission's working files (not its notebooks: the kernel gets the notebook over its pipe),
    relative POSIX path -> bytes. Symlinks and special files are skipped, as when staging."""
    packed: dict[str, bytes] = {}
    total = 0
    for path in sorted(files.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb":
            continue
        size = path.stat().st_size
        total += size
        if len(packed) >= MAX_FILES or total > MAX_BYTES:
            raise SubmissionTooLarge(
                f"the submission's files are too many or too large to grade on the cluster (at most {MAX_FILES} "
                f"files and {MAX_BYTES // 2**20} MB besides the notebook)")
        packed[path.relative_to(files).as_posix()] = path.read_bytes()
    return packed


def unpack_files(packed: dict[str, bytes], target: Path) -> None:
    """Write packed files under `target`; a path that would leave it is refused (defence in depth:
    the grader built the names, but a worker should not trust the network)."""
    if len(packed) > MAX_FILES or sum(len(data) for data in packed.values()) > MAX_BYTES:
        raise SubmissionTooLarge("the task's files exceed the cap")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in packed.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or not relative.parts or ".." in relative.parts:
            raise ValueError(f"refused file name in the task: {name!r}")
        path = target.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# ---------------------------------------------------------------- on the worker


def _clean_stale_scratch() -> None:
    """Remove scratch directories of dead worker processes on this node (a killed worker cannot
    clean up: its workdir tmpfs stays mounted until someone unmounts it)."""

    for scratch in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        try:
            pid = int(scratch.name[len(SCRATCH_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid() or Path(f"/proc/{pid}").exists():
            continue
        for run in scratch.glob("runs/*"):
            if run.is_dir():
                unmount_workdir(run)
        shutil.rmtree(scratch, ignore_errors=True)


def _payload(result: ExecutionResult) -> dict[str, Any]:
    return {"status": result.status, "reason": result.reason, "notebook": nbformat.writes(result.notebook),
            "seconds": result.seconds, "log_tail": result.log_tail, "judge_seconds": result.judge_seconds,
            "judge_cpu": result.judge_cpu, "worker": socket.gethostname()}


_worker_sandboxes: dict[str, Sandbox] = {}
_worker_sandboxes_lock = threading.Lock()


def _worker_sandbox(spec: dict) -> Sandbox:
    """This worker process's Sandbox for `spec`, kept between tasks: its zygote (the lab's imports,
    paid once per worker) forks a fresh sandbox for each task. It dies with the worker process."""
    key = json.dumps(spec, sort_keys=True)
    with _worker_sandboxes_lock:
        if key not in _worker_sandboxes:
            _clean_stale_scratch()
            scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
            (scratch / "runs").mkdir()
            runtime = KernelRuntime.of_key(tuple(spec["runtime"]) if spec.get("runtime") else None)
            _worker_sandboxes[key] = Sandbox(scratch / "runs", Limits(**spec["limits"]), spec["sandboxed"],
                                             list(spec["warm_modules"]), spec["execute_settings"], runtime=runtime)
        return _worker_sandboxes[key]


def execute_remote(spec: dict, files: dict[str, bytes], notebook: str, program: dict[str, str],
                   delimiters: dict[str, str] | None = None) -> dict[str, Any]:
    """The Dask task: run one sanitized notebook in a sandbox on this worker and judge it; the result as JSON-able data.

    Idempotent: everything it writes is under its own directories (its files, its run), removed at the
    end, so a task that is run again (its first worker died) starts from nothing and gives the same result."""

    nb = nbformat.reads(notebook, as_version=4)
    try:
        sandbox = _worker_sandbox(spec)
    except RuntimeMissing as missing:  # this worker cannot run the course's runtime: never another one instead
        reason = f"grader error: worker {socket.gethostname()}: {missing}"
        mark_not_run(nb, reason)
        return _payload(ExecutionResult(Status.GRADER_ERROR, reason, nb, 0.0))
    if spec["sandboxed"] and not sandbox.sandboxed:
        reason = f"grader error: worker {socket.gethostname()} has no bubblewrap (bwrap): refused to run unconfined"
        mark_not_run(nb, reason)
        return _payload(ExecutionResult(Status.GRADER_ERROR, reason, nb, 0.0))
    task_files = Path(tempfile.mkdtemp(prefix="files-", dir=sandbox.scratch.parent))
    executor = None
    try:
        unpack_files(files, task_files)
        executor = sandbox.start()
        problem = executor.ready()
        if problem:
            raise RuntimeError(problem)
        copy_into(executor, task_files)
        result = run_judged(executor, nb, program, Delimiters(**delimiters) if delimiters else NBGRADER_DEFAULTS)
    except Exception as error:  # same as the local pool: a broken executor is the grader's failure
        reason = f"grader error: {error}"
        mark_not_run(nb, reason)
        result = ExecutionResult(Status.GRADER_ERROR, reason, nb, 0.0)
    finally:
        if executor is not None:
            executor.kill()  # idempotent: after run_judged's own finish() it only releases what is left
            shutil.rmtree(executor.workdir, ignore_errors=True)
        shutil.rmtree(task_files, ignore_errors=True)
    return _payload(result)


# ---------------------------------------------------------------- in the grader


def connect(scheduler: str):
    """A Dask client for `--scheduler`: an address (tcp://host:8786), a scheduler file (JSON, as
    `dask scheduler --scheduler-file` and dask-jobqueue write it), or `config` for Dask's own
    configuration (`scheduler-address` in ~/.config/dask/*.yaml or $DASK_SCHEDULER_ADDRESS)."""
    from distributed import Client

    if scheduler == "config":
        import dask

        address = dask.config.get("scheduler-address", None)
        if not address:
            raise UsageError("--scheduler config: Dask's configuration sets no scheduler-address")
        return Client(address, timeout=CONNECT_TIMEOUT)
    if scheduler.endswith(".json") or Path(scheduler).is_file():
        return Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT)
    return Client(scheduler, timeout=CONNECT_TIMEOUT)


class DaskPool:
    """The execution pool's interface (`submit`, `close`, results through `on_done`) on a Dask cluster."""

    def __init__(self, client, spec: SandboxSpec, on_done: OnDone, program: dict[str, str],
                 own_client: bool = True, delimiters: Delimiters = NBGRADER_DEFAULTS) -> None:
        self.client = client
        self.spec = asdict(spec)
        self.on_done = on_done
        self.program, self.delimiters = program, asdict(delimiters)
        self.own_client = own_client
        self.run_id = uuid.uuid4().hex[:8]  # task keys unique per grading run: two runs never share results
        self._lock = threading.Condition()
        self._submitted = 0
        self._handled = 0
        self._closing = False
        self._aborted = threading.Event()
        self._futures: list[Any] = []
        self._done: list[Any] = []
        self._students: dict[str, tuple[str, NotebookNode]] = {}
        self._collector = threading.Thread(target=self._collect, name="gradekit-dask-results", daemon=True)
        self._collector.start()

    def key(self, student: str) -> str:
        return f"gradekit-{student}-{self.run_id}"

    def submit(self, student: str, files: Path, nb: NotebookNode) -> None:
        if self._aborted.is_set():
            return
        try:
            packed = pack_files(files)
        except SubmissionTooLarge as error:  # locally it would be graded: the cluster's limit, not the student's fault
            self._finish(student, self._failed(nb, f"grader error: {error}"))
            return
        future = self.client.submit(execute_remote, self.spec, packed, nbformat.writes(nb), self.program,
                                    self.delimiters, key=self.key(student), pure=False, retries=TASK_RETRIES)
        with self._lock:
            self._submitted += 1
            self._students[future.key] = (student, nb)
            self._futures.append(future)
        future.add_done_callback(self._arrived)  # called from Dask's thread: hand over, do the work in ours

    def _arrived(self, future) -> None:
        with self._lock:
            self._done.append(future)
            self._lock.notify_all()

    def _collect(self) -> None:
        while True:
            with self._lock:
                while not self._done and not (self._closing and self._handled == self._submitted):
                    self._lock.wait()
                if not self._done:
                    return
                future = self._done.pop(0)
            student, nb = self._students[future.key]
            try:
                self._finish(student, self._result(future, nb))
            finally:
                future.release()
                with self._lock:
                    self._handled += 1
                    self._lock.notify_all()

    def _result(self, future, nb: NotebookNode) -> ExecutionResult:
        try:
            payload = future.result()
            notebook = nbformat.reads(payload["notebook"], as_version=4)
            return ExecutionResult(payload["status"], payload["reason"], notebook, float(payload["seconds"]),
                                   payload.get("log_tail", ""), float(payload.get("judge_seconds", 0.0)),
                                   float(payload.get("judge_cpu", 0.0)))
        except Exception as error:  # KilledWorker (lost too often), a task error after its retries, cancelled
            return self._failed(nb, f"grader error on the cluster: {type(error).__name__}: {error}"[:300])

    @staticmethod
    def _failed(nb: NotebookNode, reason: str) -> ExecutionResult:
        # Not scored (a grader error), but should it ever be: every cell marked not run scores 0, never full marks.
        failed = copy.deepcopy(nb)
        mark_not_run(failed, reason)
        return ExecutionResult(Status.GRADER_ERROR, reason, failed, 0.0)

    def _finish(self, student: str, result: ExecutionResult) -> None:
        if not self._aborted.is_set():  # as the local pool: after an interrupt, nothing more is scored
            self.on_done(student, result)

    def abort(self) -> None:
        """Stop now (Ctrl-C, SIGTERM): cancel every task still queued or running on the cluster."""
        self._aborted.set()
        with self._lock:
            futures = list(self._futures)
        if futures:
            try:
                self.client.cancel(futures, force=True)
            except Exception:  # noqa: BLE001 - the cluster may be gone already: nothing left to cancel
                pass

    def close(self) -> None:
        """Wait for every submitted notebook's result (each handed to `on_done` once), then disconnect."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._collector.join()
        if self.own_client:
            self.client.close()


