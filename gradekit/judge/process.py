"""The grader's side of the judge's processes (`gradekit.judge.serve`): a zygote per lab, a judge per notebook.

`lend(program, limits)` gives a worker a judge forked for its notebook from the lab's zygote (started once,
torch imported once, ~2 s of CPU; a fork takes milliseconds). The grader waits on a judge with a deadline
per trusted cell (`Limits.judge_seconds`, the kernel's calls apart: they have their own) and the judge runs
under an address-space limit (`Limits.judge_memory_mb` beyond what it shares with the zygote). A judge that
dies, overruns or runs out of memory is killed; the notebook it judged ends as a grader error
(`JudgeFailed`), which the grading run retries once, alone. After its notebook every judge is stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from gradekit.judge.judge import ChannelClosed, Verdict
from gradekit.sandbox.executors import MAX_EVENT_BYTES
from gradekit.sandbox.pipes import LineReader, LineTooLong, write_within
from gradekit.sandbox.settings import Limits

STARTUP_SECONDS = 120.0  # importing torch and the lab's modules, on a busy machine
MAX_JUDGE_LINE = MAX_EVENT_BYTES  # a request the judge sends (its own encoding of the checks' arguments)
# The judge's references are small: one thread for each numeric library, beside the notebooks.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class JudgeFailed(Exception):
    """The judge's process died, overran its time or ran out of memory: a grader error, never a verdict."""


class JudgeZygote:
    """The process judges are forked from, for one lab's trusted program; thread-safe."""

    def __init__(self, program: dict[str, str], limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self.log = tempfile.TemporaryFile()
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gradekit.judge.serve", str(theirs.fileno())], stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL, stderr=self.log, pass_fds=[theirs.fileno()],
            env={**os.environ, **ONE_THREAD, "PYTHONWARNINGS": "ignore"},
            start_new_session=True)  # Ctrl-C reaches the grader's process group: the grader decides when it stops
        theirs.close()
        self._ready: str | None = None
        try:
            self.process.stdin.write(json.dumps({"program": program, "memory_mb": limits.judge_memory_mb}).encode())
            self.process.stdin.close()
        except OSError:
            pass  # it died at once: ready() says why

    def ready(self) -> str:
        """"" once it has imported what the lab's cells import, else why not (then it is stopped)."""
        with self._lock:
            if self._ready is None:
                answer = self._receive(STARTUP_SECONDS)
                self._ready = "" if answer.get("op") == "ready" else \
                    f"the judge could not start{self._log_line()}"
                if self._ready:
                    self._stop()
            return self._ready

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, stream: socket.socket) -> int:
        """A judge serving `stream`; its pid. Raises JudgeFailed."""
        problem = self.ready()
        if problem:
            raise JudgeFailed(problem)
        with self._lock:
            try:
                socket.send_fds(self.control, [json.dumps({"op": "fork"}).encode()], [stream.fileno()])
            except OSError:
                raise JudgeFailed(f"the judge's zygote is gone{self._log_line()}") from None
            pid = self._receive(30.0).get("pid")
        if type(pid) is not int:
            raise JudgeFailed(f"the judge's zygote did not fork a judge{self._log_line()}")
        return pid

    def ended(self, pid: int) -> str:
        """How the judge `pid` ended, as its zygote saw it ("" if unknown)."""
        with self._lock:
            try:
                self.control.send(json.dumps({"op": "status", "pid": pid}).encode())
            except OSError:
                return ""
            status = self._receive(10.0).get("status")
        return status if isinstance(status, str) else ""

    def _receive(self, seconds: float) -> dict:
        ready, _, _ = select.select([self.control], [], [], seconds)
        try:
            message = json.loads(self.control.recv(4096)) if ready else None
        except (OSError, ValueError):
            message = None
        return message if isinstance(message, dict) else {}

    def _log_line(self) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - 2000))
            lines = self.log.read().decode(errors="replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return f": {lines[-1][:200]}" if lines else ""

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        self.control.close()  # the zygote exits at end of file; its judges follow
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.log.close()


class JudgeProcess:
    """One notebook's judge, forked from `zygote` (see the module's docstring); used by one thread."""

    def __init__(self, zygote: JudgeZygote, student_code: Sequence[str] = (),
                 runtime_python: str | None = None) -> None:
        self.zygote, self.limits = zygote, zygote.limits
        self.stream, theirs = socket.socketpair()
        try:
            self.pid = zygote.fork(theirs)
        finally:
            theirs.close()
        self.stream.setblocking(False)
        self.lines = LineReader(self.stream.fileno(), MAX_JUDGE_LINE)
        self.broken = ""  # why it may not be used again
        # The notebook's own code, as text, for the "by hand" checks (`gradekit.course.cells.student_code`).
        self._send({"op": "student_code", "cells": list(student_code), "runtime_python": runtime_python},
                   time.monotonic() + 10.0)

    # ------------------------------------------------------------ one notebook

    def run(self, grade_id: str, is_test: bool, bridge: Callable[[str], dict]) -> tuple[Verdict, float]:
        """The verdict on cell `grade_id` and the judge's CPU seconds for it.

        `bridge(request_text)` carries each request to the kernel: `{"event": "bridge", "reply": text}` or
        `{"event": "failed", "status", "reason"}` (then ChannelClosed is raised). Raises JudgeFailed."""
        self._send({"op": "run", "cell": grade_id, "test": is_test}, time.monotonic() + 10.0)
        while True:
            message = self._receive(time.monotonic() + self.limits.judge_seconds, f"judging {grade_id}")
            kind = message.get("op")
            if kind == "bridge":
                event = bridge(str(message.get("request")))
                if event["event"] == "failed":
                    self._close_channel()
                    raise ChannelClosed(event["status"], event["reason"])
                self._send({"reply": event.get("reply")}, time.monotonic() + self.limits.judge_seconds)
            elif kind == "verdict":
                verdict = Verdict(bool(message.get("passed")), str(message.get("message", "")),
                                  str(message.get("ename", "CheckFailed")))
                return verdict, float(message.get("cpu") or 0.0)
            elif kind == "failed":
                self._fail(str(message.get("reason", "the judge failed"))[:300])
            else:
                self._fail(f"the judge sent {str(kind)[:40]!r} while judging {grade_id}")

    def _close_channel(self) -> None:
        """The kernel went away mid-cell: the judge unwinds that cell (its notebook ends here)."""
        try:
            self._send({"closed": True}, time.monotonic() + 10.0)
            while (message := self._receive(time.monotonic() + 10.0, "unwinding")).get("op") == "bridge":
                self._send({"closed": True}, time.monotonic() + 10.0)
            if message.get("op") != "closed":
                self._fail("the judge did not stop when the kernel went away")
        except JudgeFailed:
            pass  # killed

    # ------------------------------------------------------------ the socket

    def _send(self, message: dict, deadline: float) -> None:
        if self.broken:
            raise JudgeFailed(self.broken)
        if not write_within(self.stream.fileno(), json.dumps(message).encode() + b"\n", deadline):
            self._fail(self._death() or "the judge stopped reading")

    def _receive(self, deadline: float, doing: str) -> dict:
        if self.broken:
            raise JudgeFailed(self.broken)
        try:
            line = self.lines.line(deadline)
        except LineTooLong:
            self._fail("the judge sent more than the grader reads")
        if line is None:
            self._fail(f"the judge took longer than {self.limits.judge_seconds:g} s {doing}")
        if not line:  # its end of the socket closed: it ended
            self._fail(self._death() or "the judge's process ended")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self._fail("the judge sent something unreadable")
        return message

    def _death(self) -> str:
        return self.zygote.ended(self.pid)

    def _fail(self, reason: str):
        self.broken = reason or "the judge failed"
        self.kill()
        raise JudgeFailed(self.broken)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.stream.close()
        self.broken = self.broken or "stopped"


def program_key(program: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(program, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- one zygote per lab, one judge per notebook

_zygotes: dict[tuple[str, Limits], JudgeZygote] = {}
_zygotes_lock = threading.Lock()
MAX_ZYGOTES = 4  # labs judged in one process (a Dask worker grades several)


def zygote_for(program: dict[str, str], limits: Limits) -> JudgeZygote:
    """The running zygote for this program and these limits, started (or restarted) if needed."""
    key = (program_key(program), limits)
    with _zygotes_lock:
        zygote = _zygotes.get(key)
        if zygote is not None and zygote.alive():
            return zygote
        zygote = _zygotes[key] = JudgeZygote(program, limits)
        extra = list(_zygotes)[:-MAX_ZYGOTES]
        stale = [_zygotes.pop(k) for k in extra]
    for old in stale:
        old.stop()
    return zygote


def prestart(program: dict[str, str], limits: Limits) -> None:
    """Start the lab's zygote now: its imports run beside the sandboxes' start."""
    zygote_for(program, limits)


@contextmanager
def lend(program: dict[str, str], limits: Limits, student_code: Sequence[str] = (),
         runtime_python: str | None = None) -> Iterator[JudgeProcess]:
    """A judge of its own for one notebook (whose code cells are `student_code`, run by `runtime_python`), forked
    from the lab's zygote; stopped afterwards. Raises JudgeFailed when no judge can be had (the zygote could not
    start, or died twice)."""
    try:
        judge = JudgeProcess(zygote_for(program, limits), student_code, runtime_python)
    except JudgeFailed:  # a zygote killed from outside: one more, once
        judge = JudgeProcess(zygote_for(program, limits), student_code, runtime_python)
    try:
        yield judge
    finally:
        judge.kill()


def stop_zygotes() -> None:
    """Stop every zygote of this process (the end of a grading run); their judges follow."""
    with _zygotes_lock:
        zygotes = list(_zygotes.values())
        _zygotes.clear()
    for zygote in zygotes:
        zygote.stop()
