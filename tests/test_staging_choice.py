"""A submission folder placed by hand (not by `collect`): the notebook graded is the one collect would take."""

from __future__ import annotations

import os

import nbformat
import pytest
from submissions.tiny_lab import LAB, NOTEBOOK, build_tiny_course, release_notebook, solved_notebook

from gradekit.course.cells import is_answer_cell
from gradekit.course.status import Status
from gradekit.staging.sanitize import stage


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return build_tiny_course(tmp_path_factory.mktemp("staging") / "course")


def test_an_edited_copy_beats_the_untouched_stub_named_for_the_lab(course, tmp_path):
    folder = course.submitted / "ada" / LAB
    folder.mkdir(parents=True)
    nbformat.write(release_notebook(course), folder / f"{NOTEBOOK}.ipynb")  # the stub, under the lab's name
    nbformat.write(solved_notebook(course), folder / f"Copy of {NOTEBOOK}.ipynb")
    os.utime(folder / f"{NOTEBOOK}.ipynb", (2_000_000_000, 2_000_000_000))  # the stub is even the newer file
    status = stage(course, LAB, "ada", tmp_path, release_notebook(course))
    assert status.status == Status.GRADED
    assert any(f"graded Copy of {NOTEBOOK}.ipynb" in line and "unchanged copies" in line for line in status.repairs)
    staged = nbformat.read(tmp_path / "submitted" / "ada" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    answers = "".join(c.source for c in staged.cells if is_answer_cell(c))
    assert answers and "raise NotImplementedError" not in answers


def test_a_notebook_one_folder_too_deep_is_reported_where_it_is(course, tmp_path):
    folder = course.submitted / "bob" / LAB / "work"
    folder.mkdir(parents=True)
    nbformat.write(solved_notebook(course), folder / f"{NOTEBOOK}.ipynb")
    status = stage(course, LAB, "bob", tmp_path, release_notebook(course))
    assert status.status == Status.INVALID
    assert f"found work/{NOTEBOOK}.ipynb in a folder below" in status.reason
