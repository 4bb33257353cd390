"""Repair an untrusted submission in a separate process, with a deadline and a memory cap.

    prepare_submission_bounded(path, release_nb, timeout=30.0, memory_mb=1024) -> PreparedSubmission

Same result as `gradekit.staging.repair.prepare_submission`, and the same `InvalidSubmission` for bad
notebooks, but a crafted notebook (huge or deeply nested JSON, thousands of cells that make the
cell matching quadratic, ...) can only cost its own process: it is killed at the deadline, and
RLIMIT_AS turns "needs 5 GB" into a clean MemoryError instead of swapping the grading machine.

Why a zygote (a small fork server) and not a plain fork or a fresh interpreter per submission:
- a fresh `python -m ...` per submission pays ~1 s of imports (nbgrader alone is 0.9 s);
- a plain fork of the grader copies a multi-threaded process (the execution pool's threads run
  while submissions are staged): a lock held by another thread at fork time (an import lock,
  a logging or I/O lock) can deadlock the child, which would then be reported as a timeout for
  a perfectly good notebook. The grader's address space (threads' stacks, sqlalchemy,
  nbgrader apps) would also count against RLIMIT_AS, so the memory limit would mean nothing;
- multiprocessing's "forkserver" re-runs the parent's `__main__` script in every child
  (`pytest`, or an instructor's own script) and pickles in both directions.
So one interpreter is started once per grader process (`_Zygote`), single-threaded, with repair,
nbformat's schema and nbgrader's validator already imported, and forks one child per
submission (fork+exit of the ~100 MB zygote: ~5 ms; ~16-20 ms per call in all on lab1).
Everything on the wire is JSON or fixed-size integers, never pickle: the reply is built from
the student's data. The reply is read with a size cap.
"""

from __future__ import annotations

import atexit
import gc
import json
import math
import os
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.staging.repair import (
    MAX_NOTEBOOK_BYTES,
    InvalidSubmission,
    PreparedSubmission,
    check_nbgrader_metadata,
    prepare_submission,
)

MAX_REPLY_BYTES = 64 * 2**20  # the repaired notebook sent back (outputs above 10 MB are dropped by repair)
STARTUP_TIMEOUT = 120.0  # starting the zygote: imports (~1 s; more on a loaded machine)
FORK_TIMEOUT = 10.0  # the zygote answers a request with the child's pid
KILL_GRACE = 2.0  # after SIGKILL, how long until the zygote has reaped the child
_MEMORY_EXIT = 3  # child exit status: out of memory, could not even send a reply
_INT = struct.Struct("!q")
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB"


# ---------------------------------------------------------------- parent side


def prepare_submission_bounded(notebook: Path, release_nb: NotebookNode | None, *, timeout: float = 30.0,
                               memory_mb: int = 1024) -> PreparedSubmission:
    """`prepare_submission` in a child process limited to `timeout` seconds and `memory_mb` of address space.

    Raises InvalidSubmission: the child's own reason, or one line for timeout, memory or a crash.
    Calls are serialised (one child at a time per grader process); `stage()` is sequential anyway.
    """
    if not (timeout > 0 and math.isfinite(timeout)) or memory_mb <= 0:
        raise ValueError(f"bad limits: timeout={timeout!r}, memory_mb={memory_mb!r}")
    path = Path(os.path.abspath(notebook))
    # Cheap checks first, with repair's own wording: no process for an obviously hopeless file.
    if not path.is_file():
        raise InvalidSubmission("missing: no notebook was submitted")
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise InvalidSubmission(f"the file is {_megabytes(size)}, over the {_megabytes(MAX_NOTEBOOK_BYTES)} "
                                "limit (huge outputs?): clear all outputs (Edit > Clear all outputs) and "
                                "submit again")
    request = json.dumps({"path": str(path), "release": release_nb, "timeout": timeout,
                          "memory_mb": memory_mb}).encode()
    with _lock:
        try:
            outcome = _zygote().run(request, timeout)
        except _ZygoteFailed:
            _discard_zygote()  # once more with a fresh zygote, then let the grader fail loudly
            try:
                outcome = _zygote().run(request, timeout)
            except _ZygoteFailed as error:
                _discard_zygote()
                raise RuntimeError(f"the repair worker process failed: {error}") from None
    return _interpret(outcome, timeout, memory_mb)


def start_worker() -> None:
    """Start the zygote now (~1 s) rather than on the first submission; optional."""
    with _lock:
        _zygote()


def stop_worker() -> None:
    """Stop the zygote (it also stops by itself when this process exits)."""
    with _lock:
        _discard_zygote()


class _ZygoteFailed(Exception):
    """The zygote itself (not the child) stopped answering: a grader problem, not the student's."""


class _Outcome:
    def __init__(self, reply: bytes, status: int | None, timed_out: bool, too_big: bool):
        self.reply, self.status, self.timed_out, self.too_big = reply, status, timed_out, too_big


class _Zygote:
    def __init__(self) -> None:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.log = tempfile.TemporaryFile()  # the zygote's stderr, shown only if it fails to start
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PACKAGE_ROOT,
                                                                         os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-c",
             f"from gradekit.staging.isolated import _zygote_main; _zygote_main({child_end.fileno()})"],
            pass_fds=[child_end.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log, cwd="/", env=env,
            start_new_session=True)  # Ctrl-C in the terminal reaches the grader only; EOF stops the zygote
        child_end.close()
        self.sock = parent_end
        self.owner = os.getpid()
        self.broken = False
        try:
            self._receive(1, STARTUP_TIMEOUT)
        except _ZygoteFailed:
            self.log.seek(0)
            tail = self.log.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            self.close()
            raise RuntimeError(f"could not start the repair worker process: {tail[0]}") from None

    def alive(self) -> bool:
        return not self.broken and self.process.poll() is None

    def close(self) -> None:
        self.sock.close()  # the zygote sees EOF and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def _receive(self, size: int, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.001))
        data = b""
        try:
            while len(data) < size:
                chunk = self.sock.recv(size - len(data))
                if not chunk:
                    raise _ZygoteFailed("it exited")
                data += chunk
        except OSError as error:  # socket.timeout included
            raise _ZygoteFailed(f"no answer ({error.__class__.__name__})") from None
        return data

    def run(self, request: bytes, timeout: float) -> _Outcome:
        read_end, write_end = os.pipe()
        try:
            try:
                socket.send_fds(self.sock, [_INT.pack(len(request))], [write_end])
                self.sock.sendall(request)
            except OSError as error:
                raise _ZygoteFailed(f"cannot send ({error})") from None
            finally:
                os.close(write_end)  # the child holds the only write end: EOF when it exits
            (pid,) = _INT.unpack(self._receive(_INT.size, FORK_TIMEOUT))
            if pid <= 0:
                raise _ZygoteFailed("fork failed")
            deadline = time.monotonic() + timeout
            reply, timed_out, too_big = _read_capped(read_end, deadline)
            if timed_out or too_big:
                _kill_group(pid)
                return _Outcome(b"", self._status(KILL_GRACE), timed_out, too_big)
            # The child closed its pipe, so it is exiting: its status follows at once.
            status = self._status(max(deadline - time.monotonic(), 0) + KILL_GRACE)
            if status is None:
                _kill_group(pid)
            return _Outcome(reply, status, False, False)
        finally:
            os.close(read_end)

    def _status(self, timeout: float) -> int | None:
        """The child's wait status from the zygote; None (and a fresh zygote next time) if it does not come."""
        try:
            return _INT.unpack(self._receive(_INT.size, timeout))[0]
        except _ZygoteFailed:
            self.broken = True
            return None


def _read_capped(fd: int, deadline: float) -> tuple[bytes, bool, bool]:
    """Everything the child writes until EOF; (data, timed_out, too_big). Never more than the cap."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks, size = [], 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"", True, False
        if not poller.poll(remaining * 1000):
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks), False, False
        size += len(chunk)
        if size > MAX_REPLY_BYTES:
            return b"", False, True
        chunks.append(chunk)


def _kill_group(pid: int) -> None:
    # The child leads its own process group (set by the zygote and by the child, no race).
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
            return
        except ProcessLookupError:
            continue
        except PermissionError:
            return


def _interpret(outcome: _Outcome, timeout: float, memory_mb: int) -> PreparedSubmission:
    """The child's reply and exit status as a PreparedSubmission or an InvalidSubmission."""
    too_slow = f"repair took longer than {timeout:g} s: the notebook is too large or malformed"
    too_big = f"repair needed more than {memory_mb} MB of memory: the notebook is too large or malformed"
    if outcome.timed_out:
        raise InvalidSubmission(too_slow)
    if outcome.too_big:
        raise InvalidSubmission(f"the repaired notebook is over {_megabytes(MAX_REPLY_BYTES)}: "
                                "the notebook is too large or malformed")
    status = outcome.status if outcome.status is not None else 0
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            raise InvalidSubmission(too_slow)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        raise InvalidSubmission(f"repair crashed ({name}): the notebook is malformed")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _MEMORY_EXIT:
        raise InvalidSubmission(too_big)
    try:
        reply = json.loads(outcome.reply)
        kind = reply["kind"]
    except (ValueError, RecursionError, MemoryError, TypeError, KeyError):
        raise InvalidSubmission(f"repair crashed (exit status {os.waitstatus_to_exitcode(status)}, "
                                "no result): the notebook is malformed") from None
    if kind == "invalid":
        raise InvalidSubmission(str(reply["message"]))
    if kind == "memory":
        peak = reply.get("peak_mb")
        if isinstance(peak, int) and 0 <= peak < memory_mb // 2:
            # Far from the limit: Python's parser says MemoryError for code nested too deeply (`----...1`).
            raise InvalidSubmission(f"repair ran out of memory at {peak} MB (limit {memory_mb} MB): a single huge "
                                    "value, or code nested too deeply: the notebook is malformed")
        raise InvalidSubmission(too_big)
    if kind == "recursion":
        raise InvalidSubmission("invalid notebook: nested too deeply")
    if kind != "prepared":
        raise InvalidSubmission(f"repair failed ({str(reply.get('message'))[:200]}): the notebook is malformed")
    try:
        notebook = nbformat.from_dict(reply["notebook"])
    except RecursionError:
        raise InvalidSubmission("invalid notebook: nested too deeply") from None
    return PreparedSubmission(notebook, [str(r) for r in reply["repairs"]], [str(f) for f in reply["flags"]])


_lock = threading.Lock()
_current: _Zygote | None = None


def _zygote() -> _Zygote:
    global _current
    if _current is not None and _current.owner != os.getpid():
        _current = None  # we are a fork of the process that started it: its socket is not ours to use
    if _current is not None and not _current.alive():
        _discard_zygote()
    if _current is None:
        _current = _Zygote()
    return _current


def _discard_zygote() -> None:
    global _current
    if _current is not None:
        zygote, _current = _current, None
        zygote.close()


@atexit.register
def _stop_at_exit() -> None:
    # Never wait for a call still running in a daemon thread; the zygote exits on EOF anyway.
    if _lock.acquire(blocking=False):
        try:
            if _current is not None and _current.owner == os.getpid():
                _discard_zygote()
        finally:
            _lock.release()


# ---------------------------------------------------------------- zygote and child side


def _warm_up() -> None:
    """Import and cache now what every child would otherwise load again (schemas, nbgrader's validator)."""

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nbformat.validate(nb)
    check_nbgrader_metadata(nb)


def _zygote_main(fd: int) -> NoReturn:
    """Serve requests from the grader on socket `fd`, one at a time, until it closes the socket."""
    sock = socket.socket(fileno=fd)
    _warm_up()
    gc.freeze()  # the warm objects stay shared with the children: no copy-on-write from the collector
    sock.sendall(b"R")
    while True:
        try:
            header, fds, _, _ = socket.recv_fds(sock, _INT.size, 1)
            while header and len(header) < _INT.size:
                more = sock.recv(_INT.size - len(header))
                header = header + more if more else b""
            if not header or len(fds) != 1:
                os._exit(0)  # the grader went away
            (length,) = _INT.unpack(header)
            payload = bytearray()
            while len(payload) < length:
                more = sock.recv(min(length - len(payload), 1 << 20))
                if not more:
                    os._exit(0)
                payload += more
        except OSError:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(bytes(payload), fds[0])
        os.close(fds[0])
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child already did it, or already exited
        try:
            sock.sendall(_INT.pack(pid))
            _, status = os.waitpid(pid, 0)
            sock.sendall(_INT.pack(status))
        except OSError:
            os._exit(0)


def _child(payload: bytes, out_fd: int) -> NoReturn:
    """Run repair under the limits and write one JSON reply to `out_fd`; never returns, never prints."""
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # nbformat warnings and the like go nowhere, never to the grader's terminal
        os.dup2(devnull, 2)
        request = json.loads(payload)
        limit = request["memory_mb"] * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # Backstop if the grader dies before killing us: the kernel stops a runaway child anyway.
        cpu = math.ceil(request["timeout"]) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        reply = _repair(request)
    except MemoryError:
        reply = b'{"kind": "memory", "peak_mb": %d}' % _peak_mb()  # no json.dumps after a MemoryError
    except RecursionError:
        reply = b'{"kind": "recursion"}'
    except BaseException as error:  # a repair bug on odd input: a short reason, no traceback
        try:
            reply = json.dumps({"kind": "crash", "message": f"{type(error).__name__}: {error}"[:300]}).encode()
        except BaseException:
            reply = b'{"kind": "crash", "message": "unknown error"}'
    try:
        view = memoryview(reply)
        while view:
            view = view[os.write(out_fd, view):]
    except BaseException:
        os._exit(_MEMORY_EXIT if isinstance(sys.exc_info()[1], MemoryError) else 1)
    os._exit(0)


def _peak_mb() -> int:
    """Peak address space of this process (VmPeak), to tell "needed a lot" from a parser's MemoryError."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return -1


def _repair(request: dict) -> bytes:
    release = None if request["release"] is None else nbformat.from_dict(request["release"])
    try:
        prepared = prepare_submission(Path(request["path"]), release)
    except InvalidSubmission as error:
        return json.dumps({"kind": "invalid", "message": str(error)}).encode()
    return json.dumps({"kind": "prepared", "notebook": prepared.notebook, "repairs": prepared.repairs,
                       "flags": prepared.flags}).encode()
