"""Backups of the gradebook and of the records that go with it, and `gradekit restore`.

Before each `collect` and `grade`, the SQLite gradebook is copied with SQLite's online backup (a
consistent copy even while another reader has it open) into `reports/backups/<time>-<command>/`,
beside each lab's status.json and ungradable.json (the ledger a grade is read with: restored
together, a grade and its ledger agree). The last `KEEP` backups are kept. `restore` first backs
up what it replaces, so a restore can itself be undone. A server gradebook (PostgreSQL) is the
server's to back up (pg_dump): said, not done.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gradekit.course.directory import Course
from gradekit.course.exits import ToolFailure, UsageError

KEEP = 10
RECORDS = ("status.json", "ungradable.json")
SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Backup:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def gradebook(self) -> Path:
        return self.path / "gradebook.db"


def check_gradebook_file(course: Course) -> None:
    """A SQLite gradebook that exists must be a SQLite database: a 0-byte or foreign file is never opened
    (nbgrader would create empty tables in it and every grade would look gone)."""
    if not course.is_sqlite or not course.gradebook.exists():
        return
    try:
        with course.gradebook.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise ToolFailure(f"the gradebook {course.gradebook} cannot be read ({error.strerror})") from None
    if header != SQLITE_HEADER:
        what = "empty (0 bytes)" if not header else "not a SQLite database"
        raise ToolFailure(f"the gradebook {course.gradebook} is {what}: nothing was changed; `gradekit restore "
                          f"--course {course.root}` puts back the last backup ({len(backups(course))} kept)")


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup of `source` into `target`, written whole (a temporary file, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        dst = sqlite3.connect(temporary)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def backups(course: Course) -> list[Backup]:
    """The backups kept, oldest first."""
    if not course.backups.is_dir():
        return []
    return [Backup(p) for p in sorted(course.backups.iterdir()) if (p / "gradebook.db").is_file()]


def backup(course: Course, reason: str) -> Backup | None:
    """Copy the gradebook and the grading records; None when there is nothing to copy (no gradebook yet, or a
    server gradebook). Keeps the last KEEP."""
    if not course.is_sqlite or not course.gradebook.is_file():
        return None
    check_gradebook_file(course)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = course.backups / f"{stamp}-{reason}"
    staging = course.backups / f".{stamp}-{reason}"
    try:
        _copy_sqlite(course.gradebook, staging / "gradebook.db")
        for record in RECORDS:
            for path in course.reports.glob(f"*/{record}"):
                if path.parent.parent == course.reports and path.is_file():
                    (staging / path.parent.name).mkdir(exist_ok=True)
                    shutil.copy2(path, staging / path.parent.name / record)
        staging.rename(folder)  # a backup is there whole, or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in backups(course)[:-KEEP]:
        shutil.rmtree(old.path, ignore_errors=True)
    return Backup(folder)


def restore(course: Course, name: str | None = None) -> tuple[Backup, Backup | None]:
    """Put back backup `name` (default: the latest): the gradebook and each lab's grading records. What is
    replaced is backed up first. Returns (restored, the backup of what it replaced)."""
    if not course.is_sqlite:
        raise UsageError("the gradebook is on a database server: restore it with the server's tools (pg_restore)")
    kept = backups(course)
    if not kept:
        raise UsageError(f"no backup in {course.backups}: backups are made by collect and grade")
    chosen = kept[-1] if name is None else next((b for b in kept if b.name == name), None)
    if chosen is None:
        raise UsageError(f"no backup {name!r} in {course.backups} (kept: {', '.join(b.name for b in kept[-5:])})")
    before = None
    try:
        before = backup(course, "before-restore")
    except ToolFailure:
        pass  # the current gradebook is damaged: nothing worth keeping
    _copy_sqlite(chosen.gradebook, course.gradebook)
    for lab_folder in course.reports.iterdir() if course.reports.is_dir() else []:
        if lab_folder.is_dir() and lab_folder != course.backups:
            for record in RECORDS:
                saved = chosen.path / lab_folder.name / record
                if saved.is_file():
                    shutil.copy2(saved, lab_folder / f".{record}.restoring")
                    os.replace(lab_folder / f".{record}.restoring", lab_folder / record)
                elif (lab_folder / record).is_file():
                    (lab_folder / record).unlink()  # none at that time (the backup of what is replaced has it)
    return chosen, before
