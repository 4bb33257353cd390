"""`report`: the instructor's overview (reports/index.html) and reports/grades.csv.

The command line only; the work is `gradekit.delivery.report`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.course.checks import course_at, require_gradebook_labs
from gradekit.delivery.report import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to report (default: every lab in the gradebook)")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")


def main(args: argparse.Namespace) -> int:

    course = course_at(args.course)
    labs = require_gradebook_labs(course, args.labs)  # no gradebook, or a lab it does not know: exit 2
    index, grades = write_report(course, labs)
    print(f"wrote {index} and {grades}")
    return 0
