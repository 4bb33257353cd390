"""The `gradekit grade` side of `gradekit serve`: when a service keeps the course warm, the command is handed to it
and its output streamed back; otherwise (no service, a stale socket, the service busy) the command runs here.

Standard library only, and imported before anything heavy: a command the service runs does not pay for
importing nbgrader, torch or the grader here. Protocol (`gradekit.grading.service`): one JSON object per line
over a Unix socket that only this user can reach.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

FORWARDED = ("grade",)  # the commands a service runs: the ones with a warm-up worth keeping
NO_SERVE = "--no-serve"
MAX_MESSAGE = 1 << 20  # one line of output from the service


def socket_dir() -> Path:
    """This user's folder of service sockets (0700): only this user can reach a service."""
    return Path(tempfile.gettempdir()) / f"gradekit-serve-{os.geteuid()}"


def socket_path(course_root: Path) -> Path:
    """The socket of the service for the course at `course_root` (resolved): named by a digest of the path, as a
    Unix socket's path is limited to 107 bytes and a course's path is not."""
    digest = hashlib.sha256(str(course_root).encode()).hexdigest()[:24]
    return socket_dir() / f"{digest}.sock"


def course_of(argv: list[str]) -> Path:
    """The course a command's arguments name (`--course`, default the kit's), resolved as the command would."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--course", type=Path, default=None)
    known, _ = parser.parse_known_args(argv)
    if known.course is None:
        from gradekit.course.directory import REPO_ROOT  # light: no nbgrader

        return REPO_ROOT
    return known.course.resolve()


def connect(course_root: Path, timeout: float = 5.0) -> socket.socket | None:
    """A connection to the course's service, or None when none is running."""
    path = socket_path(course_root)
    if not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout)
    try:
        connection.connect(str(path))
    except OSError:  # a socket left by a service that was killed: nobody listens
        connection.close()
        return None
    return connection


def ask(course_root: Path, request: dict, timeout: float = 10.0) -> dict | None:
    """One request, one answer (`status`, `stop`); None when no service runs for the course."""
    connection = connect(course_root, timeout)
    if connection is None:
        return None
    try:
        with connection:
            connection.sendall(json.dumps(request).encode() + b"\n")
            line = connection.makefile("rb").readline(MAX_MESSAGE)
    except OSError:
        return None
    try:
        answer = json.loads(line)
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def forward(argv: list[str]) -> int | None:
    """Run `gradekit <argv>` in the course's service and return its exit code; None: run it here instead."""
    if not argv or argv[0] not in FORWARDED or NO_SERVE in argv or {"-h", "--help"} & set(argv):
        return None
    course_root = course_of(argv[1:])
    connection = connect(course_root)
    if connection is None:
        return None
    # The course as resolved here (the default is this checkout's), whatever the service's own default is.
    request = {"op": argv[0], "argv": [*argv[1:], "--course", str(course_root)], "cwd": os.getcwd()}
    with connection:
        try:
            connection.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            return None
        connection.settimeout(None)  # a grading run takes as long as it takes; the service bounds it
        # Ctrl-C, SIGTERM or SIGHUP here stop the run there, as they would stop it here; its end is still relayed.
        # A second one stops waiting for it.
        asked: list[int] = []

        def on_signal(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
            asked.append(signum)
            if len(asked) > 1:
                raise KeyboardInterrupt
            _interrupt(connection)

        relay = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            return _relay(connection)
        except KeyboardInterrupt:
            print("\ngradekit grade: stopped waiting; the service is stopping the run, and what it wrote is whole",
                  file=sys.stderr)
            return 130  # gradekit.course.exits.EXIT_INTERRUPTED
        finally:
            for sig, handler in relay.items():
                signal.signal(sig, handler)


def _relay(connection: socket.socket) -> int | None:
    """Write what the service prints until it says the exit code; None if it was busy (nothing ran there)."""
    started, lines = False, connection.makefile("rb")
    while True:
        try:
            line = lines.readline(MAX_MESSAGE)
        except OSError:
            line = b""
        if not line:
            return _lost() if started else None
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        if "busy" in message and not started:  # another command holds the service: run here, where the course
            return None  # lock says who holds the course
        started = True
        if "exit" in message:
            return int(message["exit"])
        stream = sys.stdout if message.get("stream") == "out" else sys.stderr
        stream.write(str(message.get("text", "")))
        stream.flush()


def _interrupt(connection: socket.socket) -> None:
    try:
        connection.sendall(json.dumps({"op": "interrupt"}).encode() + b"\n")
    except OSError:
        pass


def _lost() -> int:
    print("gradekit grade: the grading service stopped during the run; what was written is whole (each student's "
          "grade one transaction): run the command again", file=sys.stderr)
    return 3  # gradekit.course.exits.EXIT_FAILED
