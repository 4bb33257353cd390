"""Lab 1 (logistic regression by hand): notebook structure, corpus coverage, its tests run in-process, and one
mistake costing once through the judge."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
from test_corpus import fork_in_fresh_worker

from gradekit.course.directory import REPO_ROOT
from gradekit.proof import corpus

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
            assert "check_" in visible or "gradient_check(" in visible, meta["grade_id"]
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


# --- one mistake costs once: compute_gradients_v2 is judged with the student's own chain-rule pieces -----------


def _graded_through_the_judge(replace: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Points (got, max) of every test cell, the answer cells named in `replace` swapped, graded as `gradekit
    grade` does: the cells in a forked student process, the test cells in the judge."""
    cells = [asdict(c) for c in corpus.code_cells(corpus.find_lab("lab1").notebook())]
    for grade_id, source in replace.items():
        cells[corpus.answer_index([corpus.Cell(**c) for c in cells], grade_id)]["source"] = source
    result = fork_in_fresh_worker(cells, timeout=120.0)
    return {c["grade_id"]: (c["points"], c["max_points"]) for c in result["cells"]}


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_chain_rule_mistake_costs_once_through_the_judge():
    """dJi_dS with the wrong sign (and dS_dZ applying the sigmoid again): test_chain_rule loses its points,
    compute_gradients_v2, right with those pieces, keeps all of its own; a wrong compute_gradients_v2 on the
    same wrong pieces still loses them."""
    solution = corpus.code_cells(corpus.find_lab("lab1").notebook())
    (pieces,) = [c.source for c in solution if c.grade_id == "chain_rule"]
    for right, wrong in (("return -y_true / y_pred + (1 - y_true) / (1 - y_pred)",
                          "return y_true / y_pred - (1 - y_true) / (1 - y_pred)"),
                         ("return y_pred * (1 - y_pred)",
                          "return torch.sigmoid(y_pred) * (1 - torch.sigmoid(y_pred))")):
        assert right in pieces
        pieces = pieces.replace(right, wrong)
    points = _graded_through_the_judge({"chain_rule": pieces})
    assert points["test_chain_rule"][0] == 0, points
    assert points["test_compute_gradients_v2"] == (3.0, 3.0), points
    assert all(got == full for grade_id, (got, full) in points.items() if grade_id != "test_chain_rule"), points

    wrong_v2 = (CORPUS / "compute_gradients_v2" / "chaff_sum.py").read_text()  # sums where the text asks to average
    points = _graded_through_the_judge({"chain_rule": pieces, "compute_gradients_v2": wrong_v2})
    assert points["test_chain_rule"][0] == 0 and points["test_compute_gradients_v2"][0] == 0, points


def test_a_chain_rule_mistake_costs_once_in_process(notebook, grading_env):
    """The same in one Python process (plain nbgrader's way of running a test cell whole)."""
    wrong_sign = (CORPUS / "chain_rule" / "chaff_dJ_wrong_sign.py").read_text()
    outcome = _run_graded_cells(notebook, {"chain_rule": wrong_sign})
    assert {grade_id for grade_id, error in outcome.items() if error is not None} == {"test_chain_rule"}
    wrong_v2 = (CORPUS / "compute_gradients_v2" / "chaff_missing_sigmoid_factor.py").read_text()
    outcome = _run_graded_cells(notebook, {"chain_rule": wrong_sign, "compute_gradients_v2": wrong_v2})
    assert {grade_id for grade_id, error in outcome.items() if error is not None} == {
        "test_chain_rule", "test_compute_gradients_v2"}
    assert "compute_gradients_v2" in str(outcome["test_compute_gradients_v2"])


ALL_ZERO = {  # functions of the documented shapes that compute nothing
    "logistic_regression": "def logistic_regression(x, w, b):\n    return torch.zeros(x.shape[0], 1, dtype=x.dtype)\n",
    "binary_cross_entropy": "def binary_cross_entropy(y_pred, y_true):\n"
                            "    return torch.zeros((), dtype=y_pred.dtype)\n",
    "compute_gradients": "def compute_gradients(x, y_pred, y_true, w, b):\n"
                         "    return torch.zeros_like(w), torch.zeros_like(b)\n",
    "gradient_descent_step": "def gradient_descent_step(x, y, w, b, learning_rate=1e-3):\n"
                             "    return torch.zeros((), dtype=x.dtype), w.clone(), b.clone()\n",
    "chain_rule": "def dJi_dS(y_pred, y_true):\n    return torch.zeros_like(y_pred)\n\n\n"
                  "def dS_dZ(y_pred):\n    return torch.zeros_like(y_pred)\n\n\n"
                  "def dZ_dW(x):\n    return torch.zeros_like(x)\n\n\n"
                  "def dZ_dB(x):\n    return torch.zeros(x.shape[0], 1, dtype=x.dtype)\n",
    "compute_gradients_v2": "def compute_gradients_v2(x, z, y_pred, y_true, w, b):\n"
                            "    return torch.zeros_like(w), torch.zeros_like(b)\n",
}


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_pieces_that_compute_nothing_never_pay_through_a_fallback():
    """"Right with your own pieces" is accepted only for pieces that compute something, evaluated before the
    function under test: all-zero functions earn nothing from gradient_descent_step or compute_gradients_v2."""
    points = _graded_through_the_judge(ALL_ZERO)
    for grade_id in ALL_ZERO:
        test = "test_" + grade_id
        assert points[test][0] == 0, (test, points[test])


def test_a_sigmoid_mistake_costs_once_in_process(notebook, grading_env):
    """A sigmoid with the wrong sign loses test_sigmoid only: logistic_regression, right with that sigmoid,
    keeps its points (and so does every later test that builds on it)."""
    wrong_sign = (CORPUS / "sigmoid" / "chaff_wrong_sign.py").read_text()
    outcome = _run_graded_cells(notebook, {"sigmoid": wrong_sign})
    assert {grade_id for grade_id, error in outcome.items() if error is not None} == {"test_sigmoid"}


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_sigmoid_mistake_costs_once_through_the_judge():
    wrong_sign = (CORPUS / "sigmoid" / "chaff_wrong_sign.py").read_text()
    points = _graded_through_the_judge({"sigmoid": wrong_sign})
    assert points["test_sigmoid"][0] == 0, points
    assert all(got == full for grade_id, (got, full) in points.items() if grade_id != "test_sigmoid"), points
    identity = "def sigmoid(z):\n    return z\n"  # no sigmoid at all: its logistic_regression gets no excuse
    lazy = "def logistic_regression(x, w, b):\n    return x @ w + b\n"
    points = _graded_through_the_judge({"sigmoid": identity, "logistic_regression": lazy})
    assert points["test_sigmoid"][0] == 0 and points["test_logistic_regression"][0] == 0, points
