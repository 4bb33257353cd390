"""Code copied from the lectures earns at most 10% of a lab's autograded points (`gradekit.proof.lecture_paste`).

The lectures' definitions are pasted into every answer cell that defines the same names; the rest stay stubs;
the notebook is graded by the judge like a corpus entry. The harness itself is checked on a made-up lecture
that holds one of the lab's own solutions: its points must show.
"""

from __future__ import annotations

import nbformat
import pytest

from gradekit.course.cells import NBGRADER_DEFAULTS, grade_id_of
from gradekit.proof.corpus import _import_heavy_modules, find_lab
from gradekit.proof.lecture_paste import MAX_SHARE, lecture_paste

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def heavy_modules():
    _import_heavy_modules()


@pytest.mark.parametrize("lab", ["lab1", "lab2", "lab3"])
def test_the_lectures_code_earns_at_most_a_tenth_of_a_lab(lab):
    result = lecture_paste(find_lab(lab))
    assert not result.crash, result.crash
    assert result.share <= MAX_SHARE, (f"{lab}: the lectures' code earns {result.points:g} of "
                                       f"{result.max_points:g} points, pasted into {result.pasted}")


def test_lab2_is_where_the_lecture_defines_the_same_classes():
    # L08 defines LogisticRegression1, LogisticRegression2 and train_model2: the paste reaches lab 2's answers,
    # so the bound above is measured, not vacuous (L08 keeps the weights as a column; lab 2 asks nn.Linear's row).
    result = lecture_paste(find_lab("lab2"))
    assert result.pasted == {"LogisticRegression1": ["LogisticRegression1"],
                             "LogisticRegression2": ["LogisticRegression2", "train_model2"]}


def test_a_lecture_holding_a_solution_earns_its_points(tmp_path):
    lab = find_lab("lab1")
    (solution,) = [c.source for c in lab.notebook().cells if grade_id_of(c) == "sigmoid"]
    lecture = nbformat.v4.new_notebook()
    lecture.cells = [nbformat.v4.new_code_cell("import torch"),
                     nbformat.v4.new_code_cell(NBGRADER_DEFAULTS.without_delimiters(solution))]
    nbformat.write(lecture, tmp_path / "L00.ipynb")
    result = lecture_paste(lab, [tmp_path / "L00.ipynb"])
    assert result.pasted == {"sigmoid": ["sigmoid"]}
    assert result.points == 4.0  # test_sigmoid, and nothing that needs another answer
