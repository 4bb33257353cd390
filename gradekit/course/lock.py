"""One writer per course: `collect` and `grade` take the same lock, so that no submission is replaced
under a grading run (the ledger would flag it anyway: `gradekit.course.ledger`)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from gradekit.course.directory import Course
from gradekit.course.exits import UsageError

LOCK_NAME = ".gradekit-grade.lock"  # in the course root


@contextmanager
def course_lock(course: Course, action: str = "grade") -> Iterator[None]:
    """Hold the course's lock for `action`; a second command is told who holds it, and touches nothing."""
    path = course.root / LOCK_NAME
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise UsageError(f"another grading run or collect is using {course.root} ({holder}): wait for it to "
                             f"finish, then {action} again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{action}, pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)
