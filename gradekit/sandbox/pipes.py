"""Reads and writes on a pipe that end by a deadline, however the other end behaves.

A process on the other end (the student's kernel, a judge process) may stop reading, shrink the pipe or
write without end: a write gives up at its deadline, a line read is capped in bytes before it is parsed.
"""

from __future__ import annotations

import os
import select
import time


def write_within(fd: int, data: bytes, deadline: float) -> bool:
    """Write all of `data` to the non-blocking `fd` by `deadline` (time.monotonic); whether it was written.

    False also when the reader is gone (a broken pipe)."""
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if not poller.poll(min(left, 1.0) * 1000):
            continue
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            continue
        except (OSError, ValueError):
            return False
        view = view[written:]
    return True


class LineTooLong(Exception):
    """The other end wrote more than the reader's cap without ending the line."""


class LineReader:
    """Lines from a non-blocking `fd`, each at most `max_bytes` long, each waited for until a deadline."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        os.set_blocking(fd, False)
        self.fd, self.max_bytes = fd, max_bytes
        self.buffer = bytearray()
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def line(self, deadline: float, tick: float = 1.0, on_tick=None) -> bytes | None:
        """The next line (without its newline); b"" at end of file; None at the deadline.

        `on_tick()` runs at least every `tick` seconds while waiting (a watchdog's check); raises
        LineTooLong past the cap."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                return line
            if len(self.buffer) > self.max_bytes:
                raise LineTooLong(f"a line longer than {self.max_bytes} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if on_tick is not None:
                on_tick()
            if not self.poller.poll(min(left, tick) * 1000):
                continue
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                return b""
            self.buffer += chunk
