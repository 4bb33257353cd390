"""`python -m gradekit.lms grades|feedback|dates`: the way back to the LMS.

    python -m gradekit.lms dates lab1                 # due date and extensions (nbgrader_config.py) -> gradebook
    python -m gradekit.lms grades                     # reports/lms/canvas-grades.csv, moodle-<lab>.csv, grades.csv
    python -m gradekit.lms grades --accept            # the same when some grades go down since the last export
    python -m gradekit.lms feedback lab1              # reports/lms/feedback-lab1-{canvas,moodle,plain}.zip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradekit.commands import run_command
from gradekit.course.checks import course_at, require_gradebook_labs
from gradekit.course.directory import Course
from gradekit.course.exits import EXIT_ATTENTION, UsageError
from gradekit.course.safe_text import terminal_safe
from gradekit.delivery.lms_export import GradesWouldDrop, export_feedback, export_grades
from gradekit.scoring.late import apply_dates


def _course(args: argparse.Namespace) -> Course:
    return course_at(args.course)


def grades(args: argparse.Namespace) -> int:

    course = _course(args)
    overrides = {}
    for item in args.column or []:  # arguments first: a typo must not cost a gradebook read
        lab, _, header = item.partition("=")
        if not lab.strip() or not header.strip():
            raise UsageError(f"--column {item!r}: expected LAB=HEADER, e.g. lab1=\"Lab 1 (4242)\"")
        overrides[lab.strip()] = header
    labs = require_gradebook_labs(course, args.labs)
    stray = sorted(set(overrides) - set(labs))
    if stray:
        raise UsageError(f"--column for {', '.join(map(repr, stray))}: not among the labs exported ({', '.join(labs)})")
    notes: list[str] = []
    try:
        written = export_grades(course, labs, args.missing, overrides, notes=notes, dry_run=args.dry_run,
                                include_unrostered=args.include_unrostered, accept=args.accept)
    except GradesWouldDrop as refused:  # the LMS has these grades: lowering them is the instructor's call
        for line in [*notes, *refused.changes.lowered_lines()]:
            print(terminal_safe(line, 400))
        print(f"gradekit lms grades: {refused}: nothing written; re-run with --accept to write them",
              file=sys.stderr)
        return EXIT_ATTENTION
    for note in notes:
        print(terminal_safe(note, 400))
    for kind, path in written.items():
        print(f"{kind:14} {path}")
    return 0


def feedback(args: argparse.Namespace) -> int:

    course = _course(args)
    require_gradebook_labs(course, [args.lab])
    written = export_feedback(course, args.lab)
    for kind, path in written.items():
        print(f"{kind:8} {path}")
    return 0 if written else 1


def dates(args: argparse.Namespace) -> int:

    course = _course(args)
    require_gradebook_labs(course, [args.lab])
    changes = apply_dates(course, args.lab)
    for change in changes:
        print(terminal_safe(change))
    print(f"{len(changes)} change(s) written to the gradebook; re-grade to apply late penalties")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommands, on `parser` (also usable as `python -m gradekit lms ...` from gradekit.commands)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    commands = parser.add_subparsers(dest="lms_command", required=True)
    sub = commands.add_parser("grades", parents=[common], help="grade files for Canvas, Moodle and a plain CSV")
    sub.add_argument("labs", nargs="*", help="labs (default: every lab in the gradebook)")
    sub.add_argument("--missing", choices=("zero", "blank"), default="zero",
                     help="what a missing submission scores (default: 0)")
    sub.add_argument("--column", action="append", metavar="LAB=HEADER",
                     help='Canvas column for a lab, e.g. lab1="Lab 1 (4242)" (repeatable)')
    sub.add_argument("--include-unrostered", action="store_true",
                     help="also export Canvas users the Canvas export (--roster) does not list")
    sub.add_argument("--dry-run", action="store_true",
                     help="only print the preview: per lab who is graded, 0, blank or pending, and the scale")
    sub.add_argument("--accept", action="store_true",
                     help="write the files even if some grades go down since the last export (without it, the "
                          "students whose grade would go down are listed and nothing is written)")
    sub.set_defaults(run=grades)
    sub = commands.add_parser("feedback", parents=[common], help="feedback pages zipped for the LMSs' bulk upload")
    sub.add_argument("lab")
    sub.set_defaults(run=feedback)
    sub = commands.add_parser("dates", parents=[common],
                              help="write due date and extensions from nbgrader_config.py to the gradebook")
    sub.add_argument("lab")
    sub.set_defaults(run=dates)


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="python -m gradekit.lms", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(parser)
        args = parser.parse_args(args)
    return args.run(args)


def standalone(argv: list[str] | None = None) -> int:
    """`python -m gradekit.lms ...`: the same one-line errors and exit codes as `python -m gradekit lms ...`."""

    parser = argparse.ArgumentParser(prog="python -m gradekit.lms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command, args.module_name = "lms", "gradekit.commands.lms"
    return run_command(args)


if __name__ == "__main__":
    sys.exit(standalone())
