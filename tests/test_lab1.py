"""Lab 1 (logistic regression by hand): notebook structure, corpus coverage, and its tests run in-process."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from gradekit.course import REPO_ROOT

NOTEBOOK = REPO_ROOT / "source" / "lab1" / "lab1_logistic_regression.ipynb"
CORPUS = REPO_ROOT / "tests" / "corpus" / "lab1"


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def _answer_ids(nb) -> list[str]:
    return [_meta(c)["grade_id"] for c in nb.cells
            if c.cell_type == "code" and _meta(c).get("solution") and not _meta(c).get("grade")]


def test_every_answer_is_followed_by_its_test_cell(notebook):
    cells = notebook.cells
    for index, cell in enumerate(cells):
        meta = _meta(cell)
        if cell.cell_type == "code" and meta.get("solution"):
            following = _meta(cells[index + 1])
            assert following.get("grade_id") == "test_" + meta["grade_id"], meta["grade_id"]
            assert following.get("points", 0) > 0


def test_test_cells_have_visible_and_hidden_parts(notebook):
    for cell in notebook.cells:
        meta = _meta(cell)
        if cell.cell_type == "code" and meta.get("grade"):
            visible, _, rest = cell.source.partition("### BEGIN HIDDEN TESTS")
            assert "check_" in visible, meta["grade_id"]
            assert "### END HIDDEN TESTS" in rest, meta["grade_id"]
            if meta["grade_id"] != "test_mean_std":  # that one checks variables computed from the data set
                assert "make_generator(" in rest, meta["grade_id"]
            assert "assert " not in cell.source, meta["grade_id"]


def test_points_total_and_written_questions(notebook):
    graded = {_meta(c)["grade_id"]: _meta(c)["points"] for c in notebook.cells if _meta(c).get("grade")}
    assert graded["answer_empty_regions"] > 0 and graded["answer_num_parameters"] > 0
    assert 40 <= sum(graded.values()) <= 50


def test_corpus_covers_every_answer_cell(notebook):
    for grade_id in _answer_ids(notebook):
        files = sorted((CORPUS / grade_id).glob("*.py"))
        wheats = [f for f in files if f.name.startswith("wheat_")]
        chaffs = [f for f in files if f.name.startswith("chaff_")]
        assert len(wheats) >= 3 and len(chaffs) >= 5, grade_id
        for entry in files:
            first = entry.read_text().splitlines()[0]
            assert first.startswith('"""') and first.endswith('"""') and len(first) > 6, entry


def _run_graded_cells(nb, replace: dict[str, str] | None = None) -> dict[str, BaseException | None]:
    """Execute the code cells in one namespace (grading mode); return each test cell's exception or None."""
    replace = replace or {}
    namespace: dict = {}
    outcome: dict[str, BaseException | None] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        grade_id = _meta(cell).get("grade_id")
        source = replace.get(grade_id, cell.source)
        try:
            exec(compile(source, f"<cell {grade_id}>", "exec"), namespace)  # noqa: S102 - our own notebook
        except Exception as error:  # a failing cell is recorded, the next cells still run (like nbgrader)
            if _meta(cell).get("grade"):
                outcome[grade_id] = error
            continue
        if _meta(cell).get("grade"):
            outcome[grade_id] = None
    return outcome


@pytest.fixture(scope="module")
def grading_env():
    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"  # skip the plots and training loops
    yield
    if previous is None:
        del os.environ["NBGRADER_EXECUTION"]
    else:
        os.environ["NBGRADER_EXECUTION"] = previous


def test_solutions_pass_every_test_cell(notebook, grading_env):
    outcome = _run_graded_cells(notebook)
    assert outcome and all(error is None for error in outcome.values()), outcome


def test_a_chaff_fails_only_its_own_test_cell(notebook, grading_env):
    chaff = (CORPUS / "sigmoid" / "chaff_exp_ratio_nan.py").read_text()
    outcome = _run_graded_cells(notebook, {"sigmoid": chaff})
    failed = {grade_id for grade_id, error in outcome.items() if error is not None}
    assert failed == {"test_sigmoid"}
    assert "sigmoid" in str(outcome["test_sigmoid"]) and "nan" in str(outcome["test_sigmoid"])


def test_test_cells_name_the_function(notebook):
    for cell in notebook.cells:
        meta = _meta(cell)
        if cell.cell_type == "code" and meta.get("grade"):
            names = Path(meta["grade_id"].removeprefix("test_")).name
            functions = {"precision_recall": ("precision", "recall"),
                         "chain_rule": ("dJi_dS", "dS_dZ", "dZ_dW", "dZ_dB")}.get(names, (names,))
            for function in functions:
                assert f'"{function}' in cell.source, (meta["grade_id"], function)
