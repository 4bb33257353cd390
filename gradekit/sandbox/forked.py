"""The forked executor: a zygote (fork server) with the lab's modules imported, once per grading run, from
which each student's sandbox is forked (`Zygote`, `ForkedExecutor`, and `_ForkedProcess`, its process handle)."""

from __future__ import annotations

import itertools
import json
import os
import queue
import resource
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gradekit.sandbox import bwrap  # uid claiming and releasing looked up on the module: a test may replace it there
from gradekit.sandbox.bwrap import (
    SANDBOX_CODE_DIR,
    SANDBOX_WORKDIR,
    _bwrap_command,
    _environment,
    _rlimits,
    address_space,
    processes_of_uid,
)
from gradekit.sandbox.executors import IMPORTS_FAILED, STARTUP_TIMEOUT, TOO_MUCH_OUTPUT, RunningExecutor, capped_lines
from gradekit.sandbox.limits import SandboxGroup
from gradekit.sandbox.pipes import write_within
from gradekit.sandbox.runtime import KernelRuntime
from gradekit.sandbox.settings import Limits

ZYGOTE_SCRIPT = f"{SANDBOX_CODE_DIR}/zygote.py"


def _zygote_limits(limits: Limits, runtime: KernelRuntime) -> None:
    """The zygote imports under the students' address-space limit (its forks inherit its mappings:
    the lab's imports must fit, as in a cold sandbox); no core dumps."""
    memory = address_space(limits, runtime)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Zygote:
    """The fork server (`untrusted/zygote.py`): one warm interpreter, with the lab's modules imported, from
    which each student's sandbox is forked (own uid, namespaces, /tmp, /submission and cgroup).

    It runs in a privileged bubblewrap with the same view of the system as a student's sandbox and the
    capabilities to build one; it never runs student code. One per grading machine and run: the
    imports (~4 s of CPU) are paid once, not per student."""

    def __init__(self, spool: Path, warm_modules: list[str], limits: Limits,
                 runtime: KernelRuntime | None = None) -> None:
        runtime = self.runtime = runtime or KernelRuntime.grader()
        self.log_path = spool.with_name("zygote.log")
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._lock = threading.Lock()
        self._on_exit: dict[str, Callable[[int | None], None]] = {}
        self._ready = threading.Event()
        self._problem: str | None = "the fork server did not start"
        self.seconds: float | None = None  # what its imports took
        env = {**_environment("/tmp", runtime.bin, SANDBOX_CODE_DIR, limits.threads),
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # as the kernel will set it
        settings = {"control_fd": theirs.fileno(), "warm_modules": warm_modules}
        command = [*_bwrap_command(None, env, True, spool=spool, runtime=runtime), runtime.python,
                   ZYGOTE_SCRIPT, json.dumps(settings)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=[theirs.fileno()],
                start_new_session=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                preexec_fn=lambda: _zygote_limits(limits, runtime))
        theirs.close()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if event.get("event") == "ready":
                failed = event.get("failed_imports") or []
                self._problem = (f"{IMPORTS_FAILED}: {', '.join(map(str, failed[:5]))}"
                                 if failed else None)
                self.seconds = event.get("seconds")
                self._ready.set()
            elif event.get("event") == "exited":
                with self._lock:
                    callback = self._on_exit.pop(str(event.get("id")), None)
                if callback:
                    callback(event.get("status"))
        # The zygote is gone: its children went with it (pid namespace); nobody waits forever.
        with self._lock:
            self._problem = self._problem or "the fork server stopped"
            callbacks, self._on_exit = list(self._on_exit.values()), {}
        self._ready.set()
        for callback in callbacks:
            callback(None)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> str | None:
        if not self._ready.wait(STARTUP_TIMEOUT):
            return "the fork server did not start in time"
        return self._problem

    def spawn(self, request: dict, fds: list[int], on_exit: Callable[[int | None], None]) -> str | None:
        with self._lock:
            if self._problem:
                return self._problem
            self._on_exit[str(request["id"])] = on_exit
            try:
                socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
            except OSError as error:
                self._on_exit.pop(str(request["id"]), None)
                return f"the fork server is gone ({error.strerror})"
        return None

    def close(self) -> None:
        self._sock.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


class _ForkedProcess:
    """The part of `subprocess.Popen` an executor uses, for a sandbox forked by the zygote."""

    def __init__(self, stdin_fd: int) -> None:
        self.stdin = os.fdopen(stdin_fd, "wb")
        self.returncode: int | None = None
        self._exited = threading.Event()

    def exited(self, status: int | None) -> None:
        self.returncode = -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = 30.0) -> int | None:
        self._exited.wait(timeout)
        return self.returncode


class ForkedExecutor(RunningExecutor):
    """An executor whose sandbox is forked from the zygote when it is asked to get ready."""

    _ids = itertools.count()

    def __init__(self, zygote: Zygote, workdir: Path, limits: Limits, execute_settings: dict) -> None:
        self.zygote, self.workdir, self.limits, self.sandboxed = zygote, workdir, limits, True
        self.runtime = zygote.runtime
        self.execute_settings = execute_settings
        self.events = queue.Queue()
        self._cleanup_lock, self._cleaned = threading.Lock(), False
        self.log_path = workdir.with_suffix(".log")
        workdir.mkdir(parents=True)
        self.uid, self._uid_lock_fd = bwrap._claim_uid()
        self.disk_limited = False  # /submission is a tmpfs of the sandbox's own mount namespace
        self.group = SandboxGroup.create(workdir.name, limits.sandbox_memory_mb + limits.disk_mb, limits.processes)
        self.process = None
        self.started = time.monotonic()
        self._ready_lock = threading.Lock()  # one spawn, whoever asks first; the others wait for its answer
        self._state_lock, self._killed = threading.Lock(), False  # no spawn once killed

    def warm(self) -> None:
        """Fork the sandbox now, in the background, so that it is ready when its notebook comes
        (a kernel takes ~0.35 s to get ready: paid while the worker's current notebook runs)."""
        threading.Thread(target=self.ready, name="gradekit-spawn", daemon=True).start()

    def ready(self) -> str | None:
        with self._ready_lock:
            if not hasattr(self, "_readiness"):
                self._readiness = self._spawn()
            return self._readiness

    def _spawn(self) -> str | None:
        problem = self.zygote.ready()
        if problem:
            return problem
        with self._state_lock:
            if self._killed:
                return "the sandbox was stopped before it started"
            problem = self._send_spawn()
        return problem or self._wait_ready()

    def _send_spawn(self) -> str | None:
        commands_read, commands_write = os.pipe()
        results_read, results_write = os.pipe()
        requests_read, requests_write = os.pipe()  # the judge's channel, straight to the kernel
        replies_read, replies_write = os.pipe()
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        cgroups = [os.open(group / "cgroup.procs", os.O_WRONLY) for group in self.group.groups] if self.group else []
        self.process = _ForkedProcess(commands_write)
        os.set_blocking(requests_write, False)  # writes to the kernel never block past a deadline
        self._channel = os.fdopen(requests_write, "wb", buffering=0)
        self._replies: queue.Queue = queue.Queue()
        request = {"op": "spawn", "id": f"{os.getpid()}-{next(self._ids)}", "run": self.workdir.name,
                   "uid": self.uid, "limits": _rlimits(self.limits, self.zygote.runtime),
                   "disk_mb": self.limits.disk_mb, "tmp_mb": 256,
                   "settings": {"cwd": SANDBOX_WORKDIR, "execute": self.execute_settings}}
        try:
            problem = self.zygote.spawn(request, [commands_read, results_write, log, requests_read, replies_write,
                                                  *cgroups], self.process.exited)
        finally:
            for fd in (commands_read, results_write, log, requests_read, replies_write, *cgroups):
                os.close(fd)
        if problem:
            self.process.exited(None)
            os.close(results_read)
            os.close(replies_read)
            return problem
        self.reader = threading.Thread(target=self._read_events, args=(results_read,), daemon=True)
        self.reader.start()
        threading.Thread(target=self._read_replies, args=(replies_read,), daemon=True).start()
        return None

    def _read_replies(self, read_end: int) -> None:
        """The kernel's answers on the judge's channel, capped like the executor's events."""
        for line in capped_lines(read_end):
            if line is None:
                self._replies.put(("too much output", None))
                return
            self._replies.put(("reply", line.decode("utf-8", errors="replace")))
        self._replies.put(("closed", None))

    def bridge(self, request: str) -> dict:
        """One request on the judge's channel: `{"event": "bridge", "reply"}`, or `{"event": "failed", ...}`.

        A call may take as long as a cell (the course's per-cell timeout): then the kernel is interrupted
        and the judge is told the call timed out; the notebook's own deadline still holds."""
        per_call = float(self.execute_settings.get("timeout") or self.limits.timeout)
        call_deadline = min(self.deadline, time.monotonic() + per_call)
        # Each request carries a fresh id that its reply must start with: a line nobody asked for (written
        # ahead by the student's code) is dropped, never taken for the answer.
        request_id = secrets.token_hex(16)
        while True:  # anything already waiting was not asked for
            try:
                self._replies.get_nowait()
            except queue.Empty:
                break
        problem = self._write_request(f"{request_id} {request}\n".encode(), call_deadline)
        if problem:
            self._kill_processes()
            return {"event": "failed", "status": "crashed", "reason": problem}
        kind, reply = self._reply_to(request_id, call_deadline)
        if kind is None and time.monotonic() < self.deadline:
            self._send(json.dumps({"op": "interrupt"}))
            kind, reply = self._reply_to(request_id, min(self.deadline, time.monotonic() + 10.0))
            if kind == "reply":
                reply = json.dumps({"error": {"type": "TimeoutError",
                                              "message": f"did not return within {per_call:g} s"}})
        event = {"event": "bridge", "reply": reply} if kind == "reply" else self._failed(kind)
        return self._unless_out_of_memory(event)

    def _write_request(self, data: bytes, deadline: float) -> str:
        """Write one request within `deadline` (the pipe is non-blocking: a kernel that stops reading, or
        shrinks the pipe, cannot hold the grader); "" when written, else why not."""
        if write_within(self._channel.fileno(), data, deadline):
            return ""
        if time.monotonic() >= deadline:
            return "the notebook's kernel stopped reading the judge's requests"
        return "the kernel died while the judge called a function"

    def _reply_to(self, request_id: str, deadline: float) -> tuple[str | None, str | None]:
        """The reply to request `request_id` (its id stripped), or what ended the wait; other lines dropped."""
        prefix = request_id + " "
        while True:
            kind, reply = self._next_reply(deadline)
            if kind != "reply":
                return kind, reply
            if reply.startswith(prefix):
                return kind, reply[len(prefix):]

    def _next_reply(self, deadline: float) -> tuple[str | None, str | None]:
        try:
            return self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None, None

    def _failed(self, kind: str | None) -> dict:
        if kind is None:
            return {"event": "failed", "status": "timed out",
                    "reason": f"the notebook ran longer than {self.limits.timeout:g} s"}
        if kind == "too much output":
            return {"event": "failed", "status": "crashed",
                    "reason": TOO_MUCH_OUTPUT}
        return {"event": "failed", "status": "crashed", "reason": "the kernel died while the judge called a function"}

    def _kill_processes(self) -> None:
        with self._state_lock:
            self._killed = True
        if self.process is None or self.process.poll() is not None:
            return
        if self.group:
            self.group.kill_all()
        else:  # no cgroup here: every process of the student's uid (pid 1 of its namespace first)
            while pids := processes_of_uid(self.uid):
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.01)

    def _clean_up(self) -> None:
        if self.process is not None:
            if self.process.wait(10.0) is None:
                self._kill_processes()
            for stream in (self.process.stdin, self._channel):  # the commands, and the judge's requests
                try:
                    stream.close()
                except OSError:
                    pass
        if self.group:
            self.group.close()
        if self._uid_lock_fd is not None:
            bwrap._release_uid(self.uid, self._uid_lock_fd)
            self._uid_lock_fd = None
