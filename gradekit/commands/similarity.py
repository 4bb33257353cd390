"""`similarity`: which pairs of students have answers alike, cell by cell (a flag for the instructor, never a grade).

The command line only; the work is `gradekit.delivery.similarity`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from gradekit.course.checks import course_at
from gradekit.course.safe_text import terminal_safe
from gradekit.delivery.similarity import write_similarity


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:  # NaN too
        raise argparse.ArgumentTypeError(f"{text!r}: a share above 0 and at most 1, e.g. 0.8")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--threshold", type=_share, default=None,
                        help="flag a pair from this score (default: course.toml [similarity] threshold, else 0.8)")


def main(args: argparse.Namespace) -> int:

    course = course_at(args.course)
    report = write_similarity(course, args.lab, threshold=args.threshold)
    for line in report.skipped:
        print(f"skipped: {terminal_safe(line)}", file=sys.stderr)
    print(f"compared {report.students} submission(s) of {args.lab} over {len(report.cells)} answer cell(s): "
          f"{len(report.pairs)} pair(s) at or above {report.threshold:g}")
    print(f"wrote {report.csv} and {report.html}")
    return 0
