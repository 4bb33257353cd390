"""`release`: regenerate release/<lab>/ from source/<lab>/ with nbgrader generate_assignment."""

from __future__ import annotations

from gradekit.authoring.notebooks import refresh_checks_cell
from gradekit.authoring.publish import lab_path, load_settings
from gradekit.course.directory import Course
from gradekit.course.exits import UsageError


def release_lab(course: Course, lab: str) -> None:
    # The checks cell is a copy of gradekit/authoring/checks_cell.py: the module is its source of truth.
    if refresh_checks_cell(course.source / lab / f"{course.notebook_name(lab)}.ipynb"):
        print(f"updated the checks cell of {lab} from gradekit/authoring/checks_cell.py")
    result = course.nbgrader("generate_assignment", lab, "--force", check=False)
    if result.returncode != 0:
        raise UsageError(f"nbgrader generate_assignment {lab} failed:\n{result.stdout}{result.stderr}")


def colab_links(course: Course) -> list[str]:
    """Open-in-Colab links of the labs in the public student repository (course.toml, `publish`)."""
    settings = load_settings(course.root)
    return [settings.colab_url(lab_path(course, lab)) for lab in course.labs()]
