"""`gradekit init DIR`: a new course kept apart from the kit (`gradekit.authoring.new_course`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.authoring.new_course import create_course


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the new course's folder (absent or empty)")
    parser.add_argument("--labs", nargs="+", metavar="LAB", default=None,
                        help="the kit's labs to copy into source/ (default: all)")
    parser.add_argument("--repository", default="your-org/your-course-labs",
                        help="the public student repository, owner/name (course.toml [publish])")


def main(args: argparse.Namespace) -> int:
    course = create_course(args.directory, args.labs, args.repository)
    print(f"new course in {course.root}: {', '.join(course.labs())}")
    print(f"next: gradekit release --course {course.root}   (then collect, grade, ... with --course)")
    return 0
