"""`release`: regenerate release/<lab>/ from source/<lab>/ with nbgrader generate_assignment."""

from __future__ import annotations

import argparse

from gradekit.authoring import refresh_checks_cell
from gradekit.course import Course, repo_course
from gradekit.publish import lab_path, load_settings, refresh_badges


def release_lab(course: Course, lab: str) -> None:
    # The checks cell is a copy of gradekit/notebook_checks.py: the module is its source of truth.
    if refresh_checks_cell(course.source / lab / f"{course.notebook_name(lab)}.ipynb"):
        print(f"updated the checks cell of {lab} from gradekit/notebook_checks.py")
    result = course.nbgrader("generate_assignment", lab, "--force", check=False)
    if result.returncode != 0:
        raise SystemExit(f"nbgrader generate_assignment {lab} failed:\n{result.stdout}{result.stderr}")


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


def colab_links(course: Course) -> list[str]:
    """Open-in-Colab links of the labs in the public student repository (course.toml, `publish`)."""
    settings = load_settings(course.root)
    return [settings.colab_url(lab_path(course, lab)) for lab in course.labs()]
