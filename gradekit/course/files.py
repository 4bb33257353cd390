"""Files a person reads (submitted notebooks, state files, grade files, pages, zips) appear whole or not at all.

Each is written beside its final path and renamed over it (`os.replace`, atomic on one file system): an
interrupted or failed write (Ctrl-C, a full disk, a killed process) leaves the previous file as it was,
and no half-written file behind it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_open(path: Path, mode: str = "w", **options) -> Iterator[IO]:
    """Open a temporary file beside `path` (text: `mode="w"`, bytes: `"wb"`); on success it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        if "b" not in mode:
            options.setdefault("encoding", "utf-8")
        with os.fdopen(handle, mode, **options) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600; the file replaces one anyone in the course could read
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.filename is None:  # a full disk says where: the file it was writing
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as stream:
        stream.write(text)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as stream:
        stream.write(data)
