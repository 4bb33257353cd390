"""`gradekit restore`: put back the gradebook and the grading records as they were before a collect or a
grade (`gradekit.course.backup`); `--list` shows the backups kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.course.backup import backups, restore
from gradekit.course.checks import course_at
from gradekit.course.exits import interrupts_as_keyboard_interrupt
from gradekit.course.lock import course_lock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", nargs="?", default=None, help="the backup to put back (default: the latest)")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--list", action="store_true", help="list the backups kept, oldest first, and stop")


def main(args: argparse.Namespace) -> int:
    course = course_at(args.course)
    if args.list:
        kept = backups(course)
        for one in kept:
            print(one.name)
        if not kept:
            print(f"no backup in {course.backups}")
        return 0
    with course_lock(course, "restore"), interrupts_as_keyboard_interrupt():
        restored, before = restore(course, args.backup)
    print(f"restored the gradebook and the grading records of {restored.name}"
          + (f"; what it replaced is kept as {before.name} (`gradekit restore {before.name}` undoes this)"
             if before else ""))
    print("grades whose submission changed since show as outdated: `gradekit grade LAB --outdated` regrades them")
    return 0
