"""Exit codes of every gradekit command, and the errors that map to them.

| code | meaning |
|---|---|
| 0 | done: every student graded (or the command did all it was asked) |
| 1 | done, but some students need the instructor (invalid, timed out, crashed, missing) or a re-run (grader error) |
| 2 | nothing was done: bad arguments, course not ready, gradebook locked or password refused, course busy |
| 3 | the tool or the machine failed (sandbox, disk full, database down or damaged): what was written is whole |
| 130 | interrupted (Ctrl-C, SIGTERM, SIGHUP): what was written is whole; a re-run finishes the work |

"Whole": each file is replaced at once, each student's grade is one transaction. A student the run did not
finish keeps no new grade: the ledger shows their old one as outdated (`gradekit.course.ledger`).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_OK, EXIT_ATTENTION, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class UsageError(Exception):
    """The instructor asked for something that cannot work; one line says what (exit 2)."""


class ToolFailure(Exception):
    """The grader itself could not do its job (exit 3); no student is blamed, no grade written."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal or SSH session), handled like Ctrl-C."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen and len(seen) < 10:
        seen.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return seen


def _free_space(filename: str | None) -> str:
    folder = filename
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        return f"{shutil.disk_usage(folder or '.').free / 2**20:.0f} MB free there"
    except OSError:
        return "free space unknown"


def environment_problem(error: BaseException | str) -> tuple[int, str] | None:
    """A fault of the machine or the gradebook's database, not of the kit nor a student: (exit code, one line
    that says what to do), never the database's raw message (it quotes SQL). None for anything else."""
    errors = _chain(error) if isinstance(error, BaseException) else []
    for one in errors:
        if isinstance(one, OSError) and one.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f" writing {one.filename}" if one.filename else ""
            return EXIT_FAILED, (f"disk full{where} ({_free_space(one.filename)}): free some space and run the "
                                 "command again; what was written is whole")
    text = " ".join(str(one) for one in errors) if errors else str(error)
    text = text.lower()
    if "database is locked" in text or "database table is locked" in text:
        return EXIT_USAGE, ("the gradebook is locked by another program (the formgrader, an nbgrader command or "
                            "another gradekit): close it or wait, then run the command again")
    if "file is not a database" in text or "disk image is malformed" in text:
        return EXIT_FAILED, ("the gradebook is damaged (not a readable SQLite database): `gradekit restore "
                             "--course DIR` puts back the last backup")
    if "password authentication failed" in text or "no password supplied" in text:
        return EXIT_USAGE, ("the gradebook database refused the user or password in c.CourseDirectory.db_url "
                            "(nbgrader_config.py)")
    if re.search(r"connection refused|could not connect|is the server running|could not translate host name|"
                 r"server closed the connection|terminating connection due to administrator command", text):
        return EXIT_FAILED, ("the gradebook database server cannot be reached (c.CourseDirectory.db_url): start it "
                             "or check the address; no grade was lost, run the command again once it is up")
    if "unable to open database file" in text:
        return EXIT_USAGE, "the gradebook file cannot be opened: check that its folder exists and is writable"
    return None


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise like Ctrl-C in the main thread, so that every phase stops the same way.

    SIGINT raises KeyboardInterrupt here even when the command started with it ignored: a shell
    script's background job (`make grade &`) inherits SIGINT ignored, and Python then leaves it so;
    `kill -INT` must still stop the run cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):  # noqa: ARG001 - signal handler signature
        raise Interrupted()

    previous = {sig: signal.signal(sig, on_term) for sig in STOP_SIGNALS}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done (one student's gradebook update), then raise.

    A student's record is then either as it was or fully updated, never half written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum, frame):  # noqa: ARG001
        received.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise Interrupted() if received[0] in STOP_SIGNALS else KeyboardInterrupt()
