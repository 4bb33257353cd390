"""`release`: regenerate release/<lab>/ from source/<lab>/ with nbgrader generate_assignment.

The command line only; the work is `gradekit.authoring.release`."""

from __future__ import annotations

import argparse

from gradekit.authoring.publish import load_settings, refresh_badges
from gradekit.authoring.release import colab_links, release_lab
from gradekit.course.directory import repo_course


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to release (default: all in source/)")


def main(args: argparse.Namespace) -> int:
    course = repo_course()
    # Every notebook's Open-in-Colab badge points into the public student repository (course.toml).
    for path in refresh_badges(course, load_settings(course.root)):
        print(f"updated the Open-in-Colab badge of {path.relative_to(course.root)}")
    for lab in args.labs or course.labs():
        release_lab(course, lab)
        print(f"released {lab} -> {course.release / lab}")
    print("Open in Colab:", *colab_links(course), sep="\n  ")
    return 0
