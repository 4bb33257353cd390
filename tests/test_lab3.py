"""Lab 3 (softmax regression): corpus layout, and the hidden tests judge key corpus entries right.

The notebook's cells are executed in this process (no kernel) so that a dozen corpus entries
are graded in seconds; `make corpus` grades all of them through nbgrader.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import nbformat
import pytest
import torch

from gradekit.course import REPO_ROOT
from tests.conftest import solution_text

NOTEBOOK = REPO_ROOT / "source" / "lab3" / "lab3_softmax_regression.ipynb"
CORPUS = REPO_ROOT / "tests" / "corpus" / "lab3"


def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def answer_ids(nb) -> list[str]:
    return [grade_id(c) for c in nb.cells if c.cell_type == "code"
            and c.metadata.get("nbgrader", {}).get("solution") and not c.metadata["nbgrader"]["grade"]]


def run_cells(replacement: Path | None = None, stop_after: str | None = None) -> dict[str, str | None]:
    """Execute the code cells in order (grading mode: no plots); the failure message of every test cell."""
    nb = notebook()
    namespace: dict = {}
    results: dict[str, str | None] = {}
    with torch.random.fork_rng(), contextlib.redirect_stdout(io.StringIO()):
        os.environ["NBGRADER_EXECUTION"] = "autograde"
        try:
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                source = solution_text(cell.source)
                if replacement is not None and grade_id(cell) == replacement.parent.name:
                    source = replacement.read_text()
                try:
                    exec(compile(source, f"<cell {grade_id(cell)}>", "exec"), namespace)  # noqa: S102
                    error = None
                except Exception as exc:  # a failing check or a student's error, as nbgrader would see it
                    error = f"{type(exc).__name__}: {exc}"
                if cell.metadata.get("nbgrader", {}).get("grade"):
                    results[grade_id(cell)] = error
                if grade_id(cell) == stop_after:
                    break
        finally:
            del os.environ["NBGRADER_EXECUTION"]
    return results


def test_every_answer_cell_has_a_corpus():
    for answer in answer_ids(notebook()):
        folder = CORPUS / answer
        wheats, chaffs = sorted(folder.glob("wheat_*.py")), sorted(folder.glob("chaff_*.py"))
        assert len(wheats) >= 3 and len(chaffs) >= 5, f"{folder}: {len(wheats)} wheats, {len(chaffs)} chaffs"
        for path in wheats + chaffs:
            first = path.read_text().splitlines()[0]
            kind = "Wheat" if path.name.startswith("wheat") else "Chaff"
            assert first.startswith(f'"""{kind}: ') and first.endswith('"""'), f"{path}: first line {first!r}"


def test_instructor_solutions_pass_every_test_cell():
    results = run_cells()
    assert results and all(error is None for error in results.values()), results


WHEATS = ["softmax/wheat_logsumexp", "SoftmaxRegression1/wheat_einsum", "train_model2/wheat_zero_grad_after_step"]
CHAFFS = ["softmax/chaff_no_max_subtraction", "softmax/chaff_global_max",
          "SoftmaxRegression1/chaff_bias_grad_sum_dim1", "SoftmaxRegression1/chaff_bias_grad_scalar",
          "SoftmaxRegression1/chaff_bias_grad_sum", "train_model2/chaff_no_zero_grad",
          "train_model2/chaff_ce_on_probas", "precision_macro/chaff_zero_division_nan",
          "f1_macro/chaff_harmonic_of_macros",
          # the written contracts: Python floats where the docstring asks for them, one-hot width from num_classes
          "SoftmaxRegression1/chaff_train_costs_tensors", "SoftmaxRegression1/chaff_evaluate_tensor",
          "SoftmaxRegression1/chaff_train_onehot_from_max", "train_model2/chaff_losses_tensors"]


@pytest.mark.parametrize("entry", WHEATS)
def test_wheat_passes_every_test_cell(entry):
    results = run_cells(CORPUS / f"{entry}.py")
    failed = {test: error for test, error in results.items() if error}
    assert not failed, failed


@pytest.mark.parametrize("entry", CHAFFS)
def test_chaff_fails_its_test_cell_with_a_named_message(entry):
    answer = entry.split("/")[0]
    error = run_cells(CORPUS / f"{entry}.py", stop_after=f"test_{answer}")[f"test_{answer}"]
    assert error is not None, f"{entry} passes test_{answer}"
    assert error.startswith("CheckFailed: ") and answer in error and "Hint:" in error, error
