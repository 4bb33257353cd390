"""Exit codes of every gradekit command, and the errors that map to them.

| code | meaning |
|---|---|
| 0 | done: every student graded (or the command did all it was asked) |
| 1 | done, but some students need the instructor: invalid, timed out, crashed, missing |
| 2 | nothing was done: bad arguments, the course is not ready, or another grading run holds it |
| 3 | the tool failed (the sandbox could not start, an internal error): no grade was written |
| 130 | interrupted (Ctrl-C, SIGTERM): grades written so far are whole, a re-run finishes the work |
"""

from __future__ import annotations

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
    """SIGTERM, handled like Ctrl-C."""


@contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM raises like Ctrl-C in the main thread, so that every phase stops the same way.

    SIGINT raises KeyboardInterrupt here even when the command started with it ignored: a shell
    script's background job (`make grade &`) inherits SIGINT ignored, and Python then leaves it so;
    `kill -INT` must still stop the run cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):  # noqa: ARG001 - signal handler signature
        raise Interrupted()

    previous_term = signal.signal(signal.SIGTERM, on_term)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


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

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        raise Interrupted() if received[0] == signal.SIGTERM else KeyboardInterrupt()
