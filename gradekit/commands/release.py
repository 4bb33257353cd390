"""`release`: regenerate release/<lab>/ from source/<lab>/ with nbgrader generate_assignment.

The command line only; the work is `gradekit.authoring.release`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.authoring.publish import load_settings, refresh_badges
from gradekit.authoring.release import colab_links, release_lab
from gradekit.course.checks import course_at
from gradekit.course.exits import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to release (default: all in source/)")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")


def main(args: argparse.Namespace) -> int:
    course = course_at(args.course)
    if not course.source.is_dir() or not course.labs():
        raise UsageError(f"no lab in {course.source}: `gradekit init DIR` makes a course with the kit's labs")
    unknown = [lab for lab in args.labs if lab not in course.labs()]
    if unknown:
        raise UsageError(f"unknown lab {', '.join(unknown)} in {course.root} (labs: {', '.join(course.labs())})")
    # Every notebook's Open-in-Colab badge points into the public student repository (course.toml).
    for path in refresh_badges(course, load_settings(course.root)):
        print(f"updated the Open-in-Colab badge of {path.relative_to(course.root)}")
    for lab in args.labs or course.labs():
        release_lab(course, lab)
        print(f"released {lab} -> {course.release / lab}")
    print("Open in Colab:", *colab_links(course), sep="\n  ")
    return 0
