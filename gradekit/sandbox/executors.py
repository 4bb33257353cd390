"""Run one student notebook in a sandbox: the cold executor (`RunningExecutor`, one bubblewrap started per
notebook), what it returns (`ExecutionResult`), and the helpers around it (`copy_into`, `mark_not_run`,
`capped_lines`, the one capped reader of what a sandbox sends back).

Limits: wall time for the whole notebook (the process group is killed), the per-process rlimits
(`gradekit.sandbox.bwrap`), and caps on the bytes read back (per line, before parsing, and in total). For
the sandbox as a whole, where the kernel offers it (`gradekit.sandbox.limits`): memory and
processes of all its processes together in a cgroup (v2, or v1), and /submission on a
size-limited tmpfs. Where it does not, the grader says so and the per-process limits remain.

Without bwrap (or with sandboxed=False) the same executor runs with the limits only. The executor
forked from a zygote instead is `gradekit.sandbox.forked`; `gradekit.sandbox.launch` picks one.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.sandbox import bwrap  # uid claiming and releasing looked up on the module: a test may replace it there
from gradekit.sandbox.bwrap import (
    SANDBOX_CODE_DIR,
    SANDBOX_WORKDIR,
    UNTRUSTED_DIR,
    _bwrap_command,
    _environment,
    _limit_setter,
)
from gradekit.sandbox.limits import SandboxGroup, mount_workdir, unmount_workdir
from gradekit.sandbox.runtime import KernelRuntime
from gradekit.sandbox.settings import Limits

EXECUTOR_SCRIPT = UNTRUSTED_DIR / "execute.py"
SANDBOX_EXECUTOR = f"{SANDBOX_CODE_DIR}/execute.py"
MAX_RESULT_BYTES = 256 * 1024 * 1024  # all that one submission may send back
MAX_EVENT_BYTES = 32 * 1024 * 1024  # one cell's outputs or one answer of the bridge
SANDBOX_STOPPED = 70  # the sandbox's own init failed (untrusted/zygote.py): its machinery, not the notebook
STARTUP_TIMEOUT = 120.0  # kernel start and warm imports, before the notebook's own clock starts
IMPORTS_FAILED = "the lab's imports failed in the sandbox"  # the lab needs what the kernel runtime lacks
WATCHDOG_GRACE = 5.0  # past the notebook's deadline, its sandbox is killed wherever the grader's thread is


@dataclass
class ExecutionResult:
    status: str  # "done", "timed out", "crashed"
    reason: str
    notebook: NotebookNode  # the input notebook with the outputs of the cells that ran
    seconds: float
    log_tail: str = ""
    judge_seconds: float = 0.0  # wall time in the judge (its own work and the kernel's answers)
    judge_cpu: float = 0.0  # CPU time of the judge's own work (references, comparisons, decoding)


MAX_CONTAINERS = 200_000  # JSON objects and arrays in one line: what parsing may build (~30 MB of Python objects)


TOO_MUCH_OUTPUT = (f"more output at once than the grader keeps (more than {MAX_EVENT_BYTES // 2**20} MB, or "
                   f"{MAX_CONTAINERS:,} JSON objects and lists)")


def within_parse_budget(line: bytes | str) -> bool:
    """Whether a line from the kernel may be parsed: at most MAX_CONTAINERS objects and arrays (counted as
    brackets, an upper bound), so that 32 MB of `[{},{},...]` never becomes millions of objects here."""
    if isinstance(line, str):
        return line.count("{") + line.count("[") <= MAX_CONTAINERS
    return line.count(b"{") + line.count(b"[") <= MAX_CONTAINERS


def capped_lines(read_end: int):
    """The lines read from a sandbox's pipe, each and all together capped before anyone parses them;
    None once a cap is passed (then nothing more is read)."""
    received = 0
    with os.fdopen(read_end, "rb") as stream:
        while line := stream.readline(MAX_EVENT_BYTES + 1):
            received += len(line)
            if len(line) > MAX_EVENT_BYTES or received > MAX_RESULT_BYTES:
                yield None
                return
            yield line


class RunningExecutor:
    """A started executor (kernel up, modules imported) waiting for its notebook."""

    overdue = False  # the watchdog killed it: the notebook ran past its deadline
    _watchdog: threading.Timer | None = None

    def __init__(self, workdir: Path, limits: Limits, sandboxed: bool, warm_modules: list[str],
                 execute_settings: dict, runtime: KernelRuntime | None = None) -> None:
        runtime = runtime or KernelRuntime.grader()
        self.workdir = workdir
        self.limits = limits
        self.runtime = runtime  # the environment its kernel runs in
        self.sandboxed = sandboxed
        self.events: queue.Queue = queue.Queue()
        self._cleanup_lock, self._cleaned = threading.Lock(), False
        self.log_path = workdir.with_suffix(".log")
        workdir.mkdir(parents=True)
        read_end, write_end = os.pipe()
        as_root = os.geteuid() == 0
        uid, self._uid_lock_fd = bwrap._claim_uid() if sandboxed and as_root else (None, None)
        self.uid = uid
        # Whole-sandbox bounds, where the kernel offers them (gradekit.sandbox.limits.mechanism() says which).
        self.disk_limited = sandboxed and mount_workdir(workdir, limits.disk_mb, uid)
        self.group = SandboxGroup.create(workdir.name, limits.sandbox_memory_mb + limits.disk_mb,
                                         limits.processes) if sandboxed else None
        if uid is not None:
            os.chown(workdir, uid, uid)
        cwd = SANDBOX_WORKDIR if sandboxed else str(workdir)
        settings = {"result_fd": write_end, "cwd": cwd, "warm_modules": warm_modules,
                    "execute": execute_settings, "uid": uid}
        python = runtime.python
        executor = SANDBOX_EXECUTOR if sandboxed else str(EXECUTOR_SCRIPT)
        if sandboxed:
            env = _environment("/tmp", runtime.bin, SANDBOX_CODE_DIR, limits.threads)
            command = [*_bwrap_command(workdir, env, as_root, runtime=runtime), python, executor, json.dumps(settings)]
            popen_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            home = workdir.with_suffix(".home")
            home.mkdir()
            command = [python, executor, json.dumps(settings)]
            popen_env = _environment(str(home), runtime.bin, str(UNTRUSTED_DIR), limits.threads)
        join_group, set_limits = (self.group.join_fn() if self.group else None), _limit_setter(limits, runtime)

        def preexec() -> None:  # in the child, before exec: into the cgroup first, then the rlimits
            if join_group:
                join_group()
            set_limits()

        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=popen_env,
                pass_fds=[write_end], start_new_session=True, preexec_fn=preexec, cwd=str(workdir))
        os.close(write_end)
        self.reader = threading.Thread(target=self._read_events, args=(read_end,), daemon=True)
        self.reader.start()

    def _read_events(self, read_end: int) -> None:
        """Parse what the sandbox sends, line by line, each line and the total capped before parsing."""
        for line in capped_lines(read_end):
            if line is None or not within_parse_budget(line):
                self.events.put({"event": "too much output"})
                return
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                self.events.put({"event": "garbled"})
                return
            self.events.put(event)
        self.events.put({"event": "closed"})

    def kill(self) -> None:
        """Kill the sandbox and clean up after it; safe to call twice and from two threads at once
        (a worker finishing its notebook while Ctrl-C aborts the pool)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._kill_processes()
        with self._cleanup_lock:
            if not self._cleaned:
                self._clean_up()
                self._cleaned = True

    def _kill_processes(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _clean_up(self) -> None:
        self.process.wait()
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:  # unsent commands to an executor the student's code killed
                pass
        if self.group:
            self.group.close()  # leftovers of the sandbox, daemons included
        if self.disk_limited:
            self.disk_limited = not unmount_workdir(self.workdir)
        if self._uid_lock_fd is not None:
            bwrap._release_uid(self.uid, self._uid_lock_fd)
            self._uid_lock_fd = None

    def _next_event(self, deadline: float) -> dict | None:
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def ready(self) -> str | None:
        """Wait until the kernel is up with the lab's modules imported: None, or why it is not."""
        if not hasattr(self, "_readiness"):
            self._readiness = self._wait_ready()
        return self._readiness

    def _wait_ready(self) -> str | None:
        event = self._next_event(time.monotonic() + STARTUP_TIMEOUT)
        if event is None:
            return "the kernel did not start in time"
        if event["event"] != "ready":
            return "the kernel could not start" + (f" ({self._log_tail().strip().splitlines()[-1][:200]})"
                                                   if self._log_tail().strip() else "")
        failed = event.get("failed_imports")
        if isinstance(failed, list) and failed:
            return f"{IMPORTS_FAILED}: {', '.join(str(f)[:60] for f in failed[:5])}"
        return None

    def warm(self) -> None:
        """Get ready in the background, before the notebook comes (a cold sandbox does from its start)."""

    def start(self, nb: NotebookNode) -> str | None:
        """Hand the executor the notebook it runs (hidden tests removed); None, or why it cannot run."""
        problem = self.ready()
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.timeout
        # Every wait on the sandbox ends at the deadline; the watchdog also ends the sandbox itself there, even
        # while the grader's thread waits on something else (the judge's own work).
        self._watchdog = threading.Timer(self.limits.timeout + WATCHDOG_GRACE, self._overdue)
        self._watchdog.daemon = True
        self._watchdog.start()
        return problem or self._send(json.dumps(nb))

    def _overdue(self) -> None:
        self.overdue = True
        self._kill_processes()

    def _send(self, line: str) -> str | None:
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return "the executor died before it got the notebook"
        return None

    def command(self, message: dict, expect: str) -> dict:
        """Send one command; the answer event, or `{"event": "failed", "status", "reason"}`."""
        event = self._command(message, expect)
        return self._unless_out_of_memory(event)

    def _unless_out_of_memory(self, event: dict) -> dict:
        if event["event"] == "failed" and self.overdue:
            return {"event": "failed", "status": "timed out",
                    "reason": f"the notebook ran longer than {self.limits.timeout:g} s"}
        if self.group and self.group.oom_killed():
            # Over the whole sandbox's memory: some process was killed; the notebook stops here, as a whole.
            if event["event"] != "failed":
                self.kill()
            return {"event": "failed", "status": "crashed",
                    "reason": f"the notebook's processes used more than {self.limits.sandbox_memory_mb} MB "
                              "of memory together"}
        return event

    def _command(self, message: dict, expect: str) -> dict:
        if self._send(json.dumps(message)) is not None:
            self.process.wait()
            return {"event": "failed", "status": "crashed", "reason": _exit_reason(self.process.returncode)}
        event = self._next_event(self.deadline)
        if event is None:
            return {"event": "failed", "status": "timed out",
                    "reason": f"the notebook ran longer than {self.limits.timeout:g} s"}
        kind = event["event"]
        if kind == expect:
            return event
        if kind == "crashed":
            return {"event": "failed", "status": "crashed", "reason": str(event.get("reason", ""))[:300]}
        if kind == "too much output":
            return {"event": "failed", "status": "crashed",
                    "reason": TOO_MUCH_OUTPUT}
        self.process.wait()
        return {"event": "failed", "status": "crashed", "reason": _exit_reason(self.process.returncode)}

    def finish(self) -> float:
        """Stop the executor; the seconds its notebook ran."""
        self._send(json.dumps({"op": "end"}))
        self.kill()
        return time.monotonic() - self.started

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""


def _exit_reason(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"the notebook's process was killed by {signal.Signals(-returncode).name}"
    if returncode == SANDBOX_STOPPED:
        return f"the sandbox stopped before the end (exit {SANDBOX_STOPPED})"
    return f"the notebook's process exited (code {returncode}) before the end"


def mark_not_run(nb: NotebookNode, reason: str) -> None:
    """Give every code cell that did not run an error output, so nbgrader scores its test cells 0.

    (nbgrader gives full points to a test cell without an error output, so an empty output
    would reward a notebook that was stopped before its tests.)
    """
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.metadata.pop("gradekit_ran", False):
            cell.outputs = [nbformat.v4.new_output(
                "error", ename="NotRun", evalue=reason,
                traceback=[f"NotRun: this cell was not run: {reason}"])]
    for cell in nb.cells:
        cell.metadata.pop("gradekit_ran", None)


def copy_into(executor: RunningExecutor, files: Path) -> None:
    """Copy a submission's working files into a started executor's working directory.

    Not its notebooks: the sanitized notebook on the grader's side holds the hidden tests; the
    kernel gets the notebook over its pipe, without them."""
    shutil.copytree(files, executor.workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.ipynb"))
    stat = executor.workdir.stat()
    for path in [executor.workdir, *executor.workdir.rglob("*")]:
        os.chown(path, stat.st_uid, stat.st_gid) if os.geteuid() == 0 else None
