"""`collect`: place an LMS bulk download (zip or folder) into submitted/<student>/<lab>/<notebook>.ipynb.

The command line only; the work is `gradekit.intake.collect`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.course.checks import course_at, require_collectable_lab
from gradekit.course.exits import UsageError
from gradekit.intake.collect import collect


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("download", type=Path, help="LMS bulk-download zip, or a folder of files")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--replace", action="store_true",
                        help="take this download's submissions even where they are older than those collected")
    parser.add_argument("--roster", type=Path, default=None,
                        help="Canvas gradebook export, Moodle grading worksheet or id,name,email CSV (kept)")
    parser.add_argument("--groups", type=Path, default=None,
                        help="Canvas group set export (a group assignment: each group's file goes to every member)")
    parser.add_argument("--timezone", default=None,
                        help="time zone of times without one (Blackboard attempt names), e.g. Europe/Paris; "
                             "default UTC")


def main(args: argparse.Namespace) -> int:
    course = course_at(args.course)
    require_collectable_lab(course, args.lab)
    if not args.download.exists():
        raise UsageError(f"{args.download}: no such file or folder")
    files, skipped = collect(course, args.lab, args.download, replace=args.replace, roster=args.roster,
                             groups=args.groups, timezone=args.timezone)
    return 0 if any(f.action in ("placed", "replaced", "unchanged", "kept existing") for f in files) else 1
