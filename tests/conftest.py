"""Shared fixtures: scratch nbgrader courses built from this repository's source/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gradekit.course import REPO_ROOT, Course


def build_course(root: Path, labs: list[str] | None = None) -> Course:
    """A fresh course in `root`: this repo's config and source/ labs, released, with an empty gradebook."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    repo = Course(REPO_ROOT)
    labs = labs or repo.labs()
    for lab in labs:
        shutil.copytree(repo.source / lab, root / "source" / lab)
    course = Course(root)
    for lab in labs:
        course.nbgrader("generate_assignment", lab, "--force")
    return course


def submit(course: Course, student: str, lab: str, notebook_path: Path | str) -> Path:
    """Place a notebook as `student`'s submission of `lab` (nbgrader's submitted/ layout)."""
    target = course.submitted / student / lab / f"{course.notebook_name(lab)}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook_path, target)
    return target


@pytest.fixture(scope="session")
def repo_course() -> Course:
    return Course(REPO_ROOT)


@pytest.fixture
def course_factory(tmp_path: Path):
    """Call with a list of labs (default: all) to get a released scratch course."""

    def factory(labs: list[str] | None = None, name: str = "course") -> Course:
        return build_course(tmp_path / name, labs)

    return factory
