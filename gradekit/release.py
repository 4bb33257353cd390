"""`release`: regenerate release/<lab>/ from source/<lab>/ with nbgrader generate_assignment."""

from __future__ import annotations

import argparse

from gradekit.course import Course, repo_course


def release_lab(course: Course, lab: str) -> None:
    result = course.nbgrader("generate_assignment", lab, "--force", check=False)
    if result.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment {lab} failed:\n{result.stdout}{result.stderr}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to release (default: all in source/)")


def main(args: argparse.Namespace) -> int:
    course = repo_course()
    for lab in args.labs or course.labs():
        release_lab(course, lab)
        print(f"released {lab} -> {course.release / lab}")
    return 0
