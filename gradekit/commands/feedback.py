"""`feedback`: one HTML page per student and lab, without the hidden tests.

The command line only; the work is `gradekit.delivery.feedback`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.course.checks import course_at, require_gradebook_labs
from gradekit.course.exits import UsageError
from gradekit.delivery.feedback import grading_status, write_feedback
from gradekit.scoring.ungradable import load_ungradable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--student", action="append", help="only these students (repeatable)")


def main(args: argparse.Namespace) -> int:

    course = course_at(args.course)
    require_gradebook_labs(course, [args.lab])
    if args.student:
        known = ({p.parent.parent.name for p in course.autograded.glob(f"*/{args.lab}/*.ipynb")}
                 | set(grading_status(course, args.lab)) | set(load_ungradable(course, args.lab)))
        unknown = sorted(set(args.student) - known)
        if unknown:
            raise UsageError(f"--student: no graded or ungradable {args.lab} for {', '.join(map(repr, unknown))} "
                             f"(grade it first: python -m gradekit grade {args.lab})")
    pages = write_feedback(course, args.lab, args.student)
    print(f"wrote {len(pages)} feedback page(s) to {course.feedback}/<student>/{args.lab}/")
    return 0 if pages else 1
