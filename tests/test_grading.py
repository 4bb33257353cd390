"""Grading end to end with nbgrader: full marks for the solution, zero for the untouched release,
and a submission with one broken function loses exactly that function's points."""

from __future__ import annotations

import copy

import nbformat
import pytest
from nbgrader.api import Gradebook

from gradekit.course.directory import REPO_ROOT, Course
from tests.conftest import fill_release

REPO = Course(REPO_ROOT)
LABS = REPO.labs()


def autograded_cells(nb) -> dict[str, float]:
    """grade_id -> points of every autograded test cell."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")}


def answer_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")]


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_full_release_zero_broken_partial(lab, course_factory):
    course = course_factory([lab])
    name = course.notebook_name(lab)
    source = nbformat.read(course.source / lab / f"{name}.ipynb", as_version=4)
    release = nbformat.read(course.release / lab / f"{name}.ipynb", as_version=4)
    solution = fill_release(release, source)
    # Break the last answer: nothing later depends on it, so only its own tests may lose points.
    broken_id = answer_ids(source)[-1]
    broken = copy.deepcopy(solution)
    for cell, stub in zip(broken.cells, release.cells, strict=True):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == broken_id:
            cell.source = stub.source
    for student, nb in {"solution": solution, "blank": release, "broken": broken}.items():
        path = course.submitted / student / lab / f"{name}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)

    result = course.nbgrader("autograde", lab, "--create", "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    tests = autograded_cells(source)
    with Gradebook(course.db_url) as gradebook:
        def scores(student: str) -> dict[str, float]:
            nb = gradebook.find_submission_notebook(name, lab, student)
            return {g.name: g.auto_score for g in nb.grades if g.name in tests}

        assert scores("solution") == tests
        assert scores("blank") == dict.fromkeys(tests, 0)
        lost = {g for g, points in scores("broken").items() if points != tests[g]}
        assert lost and all(g.startswith(f"test_{broken_id}") for g in lost), lost
