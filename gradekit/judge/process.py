"""The grader's side of a judge process (`gradekit.judge.serve`): start it, lend it, watch it, replace it.

A judge process serves one notebook at a time and many notebooks in turn (torch is imported once per
process, ~1.2 s); each notebook gets a fresh `Judge`. The grader waits on it with a deadline per trusted
cell (`Limits.judge_seconds`, the kernel's calls apart: they have their own) and a bound on its memory
(`Limits.judge_memory_mb`, an address-space limit in the process). A judge that dies, overruns or runs
out of memory is killed and never lent again; the notebook it judged ends as a grader error (`JudgeFailed`),
which the grading run retries once, alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gradekit.judge.judge import ChannelClosed, Verdict
from gradekit.sandbox.executors import MAX_EVENT_BYTES
from gradekit.sandbox.pipes import LineReader, LineTooLong, write_within
from gradekit.sandbox.settings import Limits

STARTUP_SECONDS = 120.0  # importing torch and the lab's modules, on a busy machine
MAX_JUDGE_LINE = MAX_EVENT_BYTES  # a request the judge sends (its own encoding of the checks' arguments)


class JudgeFailed(Exception):
    """The judge's process died, overran its time or ran out of memory: a grader error, never a verdict."""


class JudgeProcess:
    """One judge process (see the module's docstring); used by one thread at a time."""

    def __init__(self, program: dict[str, str], limits: Limits) -> None:
        self.program_key = program_key(program)
        self.limits = limits
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gradekit.judge.serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, env={**os.environ, "PYTHONWARNINGS": "ignore"},
            start_new_session=True)  # Ctrl-C reaches the grader's process group: the grader decides when it stops
        os.set_blocking(self.process.stdin.fileno(), False)
        self.lines = LineReader(self.process.stdout.fileno(), MAX_JUDGE_LINE)
        self.broken = ""  # why it may not be lent again
        self._ready = False
        self._send({"program": program, "memory_mb": limits.judge_memory_mb}, time.monotonic() + STARTUP_SECONDS)

    # ------------------------------------------------------------ one notebook

    def ready(self) -> None:
        """Wait until it has imported what the lab's cells import; raises JudgeFailed."""
        if not self._ready:
            message = self._receive(time.monotonic() + STARTUP_SECONDS, "starting")
            if message.get("op") != "ready":
                self._fail(f"the judge could not start ({message.get('op')})")
            self._ready = True

    def begin(self) -> None:
        """A fresh judge for the next notebook."""
        self.ready()
        self._send({"op": "begin"}, time.monotonic() + 10.0)

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
        """The kernel went away mid-cell: the judge unwinds that cell, and may judge the next notebook."""
        try:
            self._send({"closed": True}, time.monotonic() + 10.0)
            while (message := self._receive(time.monotonic() + 10.0, "unwinding")).get("op") == "bridge":
                self._send({"closed": True}, time.monotonic() + 10.0)
            if message.get("op") != "closed":
                self._fail("the judge did not stop when the kernel went away")
        except JudgeFailed:
            pass  # broken: killed, and not lent again

    # ------------------------------------------------------------ the pipe

    def _send(self, message: dict, deadline: float) -> None:
        if self.broken:
            raise JudgeFailed(self.broken)
        if not write_within(self.process.stdin.fileno(), json.dumps(message).encode() + b"\n", deadline):
            self._fail(self._death() or "the judge stopped reading")

    def _receive(self, deadline: float, doing: str) -> dict:
        if self.broken:
            raise JudgeFailed(self.broken)
        try:
            line = self.lines.line(deadline, tick=0.5, on_tick=self._check_alive)
        except LineTooLong:
            self._fail("the judge sent more than the grader reads")
        if line is None:
            seconds = STARTUP_SECONDS if doing == "starting" else self.limits.judge_seconds
            self._fail(f"the judge took longer than {seconds:g} s {doing}")
        if not line:
            self._fail(self._death() or "the judge closed its pipe")
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self._fail("the judge sent something unreadable")
        return message

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            self._fail(self._death())

    def _death(self) -> str:
        try:
            code = self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return ""
        if code < 0:
            return f"the judge's process was killed by {signal.Signals(-code).name}"
        return f"the judge's process exited (code {code}){self._log_line()}"

    def _log_line(self) -> str:
        try:
            self.log.seek(0, os.SEEK_END)
            self.log.seek(max(0, self.log.tell() - 2000))
            lines = self.log.read().decode(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f": {lines[-1][:200]}" if lines else ""

    def _fail(self, reason: str):
        self.broken = reason or "the judge failed"
        self.kill()
        raise JudgeFailed(self.broken)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.log):
            try:
                stream.close()
            except OSError:
                pass
        self.broken = self.broken or "stopped"


def program_key(program: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(program, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- judges lent to workers

MAX_IDLE = 16  # judge processes kept between notebooks (~250 MB each)
_idle: list[JudgeProcess] = []
_idle_lock = threading.Lock()


def prestart(program: dict[str, str], limits: Limits, count: int) -> None:
    """Start `count` judges now (their imports run beside the sandboxes' start), to be lent later."""
    started = [JudgeProcess(program, limits) for _ in range(count)]
    with _idle_lock:
        _idle.extend(started)
    _trim()


@contextmanager
def lend(program: dict[str, str], limits: Limits) -> Iterator[JudgeProcess]:
    """A judge process for one notebook: an idle one for this program and limits, or a new one. It goes back
    to the idle judges afterwards unless it broke (then it is gone)."""
    key = program_key(program)
    with _idle_lock:
        judge = next((j for j in _idle if j.program_key == key and j.limits == limits and not j.broken), None)
        if judge is not None:
            _idle.remove(judge)
    judge = judge or JudgeProcess(program, limits)
    try:
        yield judge
    except BaseException:
        judge.kill()  # in the middle of a cell: its state is unknown
        raise
    if judge.broken:
        judge.kill()
        return
    with _idle_lock:
        _idle.append(judge)
    _trim()


def _trim() -> None:
    with _idle_lock:
        extra = _idle[:-MAX_IDLE] if len(_idle) > MAX_IDLE else []
        del _idle[:len(extra)]
    for judge in extra:
        judge.kill()


def stop_idle() -> None:
    """Stop every idle judge (the end of a grading run)."""
    with _idle_lock:
        idle = list(_idle)
        _idle.clear()
    for judge in idle:
        judge.kill()
