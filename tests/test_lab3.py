"""Lab 3 (softmax regression): corpus layout, and the hidden tests judge key corpus entries right.

The notebook's cells are executed in this process (no kernel) so that a dozen corpus entries
are graded in seconds; `make corpus` grades all of them through nbgrader.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import nbformat
import pytest
import torch

from gradekit.course.directory import REPO_ROOT
from gradekit.proof import corpus
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


def run_cells(replacement: Path | None = None, stop_after: str | None = None,
              printed: io.StringIO | None = None) -> dict[str, str | None]:
    """Execute the code cells in order (grading mode: no plots); the failure message of every test cell."""
    nb = notebook()
    namespace: dict = {}
    results: dict[str, str | None] = {}
    with torch.random.fork_rng(), contextlib.redirect_stdout(printed or io.StringIO()):
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


def test_f1_visible_check_waits_for_precision_and_recall():
    """While precision_macro misses its own check, f1_macro's visible check says it compared nothing yet,
    and does not also print that its checks pass."""
    printed = io.StringIO()
    results = run_cells(CORPUS / "precision_macro/chaff_zero_division_nan.py", stop_after="test_f1_macro",
                        printed=printed)
    assert results["test_precision_macro"] is not None and results["test_f1_macro"] is None, results
    text = printed.getvalue()
    assert "f1_macro: not compared yet" in text, text
    assert "f1_macro: the visible checks pass" not in text, text


# ---------------------------------------------------------------------------------------------
# One mistake costs once, through the judge (the grader's own process; the student's code runs in a
# forked child): a wrong piece loses the points of its own test only.
# ---------------------------------------------------------------------------------------------

# A student who shares a per-class helper between precision_macro and f1_macro.
SHARED_PRECISION = '''
def precision_per_class(y_pred, y_true, num_classes):
    classes = torch.arange(num_classes)
    true_positives = ((y_pred[:, None] == classes) & (y_true[:, None] == classes)).sum(dim=0).double()
    counts = (y_pred[:, None] == classes).sum(dim=0).double()
    return torch.where(counts > 0, true_positives / counts.clamp(min=1), 0.0)


def precision_macro(y_pred, y_true, num_classes):
    return precision_per_class(y_pred, y_true, num_classes).mean()
'''
SHARED_F1 = '''
def f1_macro(y_pred, y_true, num_classes):
    classes = torch.arange(num_classes)
    precision = precision_per_class(y_pred, y_true, num_classes)
    true_positives = ((y_pred[:, None] == classes) & (y_true[:, None] == classes)).sum(dim=0).double()
    counts = (y_true[:, None] == classes).sum(dim=0).double()
    recall = torch.where(counts > 0, true_positives / counts.clamp(min=1), 0.0)
    per_class = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), 0.0)
    return per_class.mean()
'''
# The classic slip in the helper: precision divided by the TRUE class counts (that is recall).
PRECISION_AS_RECALL = ("counts = (y_pred[:, None] == classes)", "counts = (y_true[:, None] == classes)")


def fork_in_fresh_worker(cells: list[dict], timeout: float = 120.0) -> dict:
    """corpus.fork_and_grade in a new process, as in tests/test_corpus.py (forking pytest itself would share
    its threads and filters)."""
    script = ("import json, sys\nfrom gradekit.proof import corpus\ncorpus._import_heavy_modules()\n"
              "cells, timeout = json.loads(sys.stdin.read())\nprint(json.dumps(corpus.fork_and_grade(cells, timeout)))")
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps([cells, timeout]),
                          capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout)


def judged_points(replacements: dict[str, str | list[tuple[str, str]]]) -> dict[str, tuple[float, float]]:
    """Points of every test cell through the judge, with answer cells replaced: grade_id -> new source, or
    grade_id -> [(old, new), ...], one-place edits of the instructor's solution."""
    lab = corpus.find_lab("lab3")
    cells = [asdict(c) for c in corpus.code_cells(lab.notebook())]
    for grade_id, change in replacements.items():
        index = corpus.answer_index([corpus.Cell(**c) for c in cells], grade_id)
        source = solution_text(cells[index]["source"])
        if isinstance(change, str):
            source = change
        for old, new in [] if isinstance(change, str) else change:
            assert source.count(old) == 1, (grade_id, old)
            source = source.replace(old, new)
        cells[index]["source"] = source
    result = fork_in_fresh_worker(cells)
    assert "cells" in result, result
    return {c["grade_id"]: (c["points"], c["max_points"]) for c in result["cells"]}


def assert_only_lost(points: dict[str, tuple[float, float]], lost: set[str]) -> None:
    assert {test for test, (got, full) in points.items() if got < full} == lost, points


# Realistic mistakes in the pieces SoftmaxRegression1 uses: forward, predict_labels, evaluate and train
# (which use the student's softmax, one_hot and cross_entropy) keep their points.
SOFTMAX_OVER_COLUMNS = ("exp.sum(dim=1, keepdim=True)", "exp.sum(dim=0, keepdim=True)")
PIECE_MISTAKES = {
    "softmax normalises the columns": ("softmax", [SOFTMAX_OVER_COLUMNS]),
    "softmax subtracts the column maxima": ("softmax", [("z.max(dim=1, keepdim=True)", "z.max(dim=0, keepdim=True)")]),
    "cross_entropy sums over the samples": ("cross_entropy", [("per_sample.mean()", "per_sample.sum()")]),
    "cross_entropy in base 10": ("cross_entropy", [("torch.log(probas)", "torch.log10(probas)")]),
    "one_hot is off by one": ("one_hot", [("torch.arange(len(y)), y]", "torch.arange(len(y)), y - 1]")]),
}


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
@pytest.mark.parametrize("mistake", PIECE_MISTAKES)
def test_a_wrong_piece_costs_only_its_own_test(mistake):
    piece, edits = PIECE_MISTAKES[mistake]
    assert_only_lost(judged_points({piece: edits}), {f"test_{piece}"})


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_wrong_train_still_fails_with_a_wrong_piece():
    """train right with neither PyTorch's pieces nor the student's own: both tests lose their points."""
    after_update = [  # the cost recorded after the update instead of before it
        ("            costs.append(cross_entropy(probas, y_onehot).item())\n", ""),
        ("self.bias = self.bias - learning_rate * grad_b\n",
         "self.bias = self.bias - learning_rate * grad_b\n"
         "            costs.append(cross_entropy(self.forward(x), y_onehot).item())\n")]
    no_bias_step = [("self.bias = self.bias - learning_rate * grad_b", "self.bias = self.bias")]
    for wrong_train in (after_update, no_bias_step):
        points = judged_points({"softmax": [SOFTMAX_OVER_COLUMNS], "SoftmaxRegression1": wrong_train})
        assert_only_lost(points, {"test_softmax", "test_SoftmaxRegression1"})


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_wrong_precision_costs_only_its_own_test():
    """A precision helper that divides by the true counts, shared with f1_macro: only precision_macro loses."""
    wrong = SHARED_PRECISION.replace(*PRECISION_AS_RECALL)
    assert wrong != SHARED_PRECISION
    assert_only_lost(judged_points({"precision_macro": SHARED_PRECISION, "f1_macro": SHARED_F1}), set())
    assert_only_lost(judged_points({"precision_macro": wrong, "f1_macro": SHARED_F1}), {"test_precision_macro"})


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_wrong_f1_still_fails_with_a_wrong_precision():
    """The same shared helper, and an f1_macro that also averages over the classes present in y_true only."""
    wrong_f1 = SHARED_F1.replace("return per_class.mean()", "return per_class[torch.unique(y_true)].mean()")
    assert wrong_f1 != SHARED_F1
    points = judged_points({"precision_macro": SHARED_PRECISION.replace(*PRECISION_AS_RECALL), "f1_macro": wrong_f1})
    assert_only_lost(points, {"test_precision_macro", "test_f1_macro"})


# Pieces that turn lazy once the method under test has run (a flag it sets), and methods that compute nothing:
# "right with your own pieces" must not pay for them.
LATE_FLAG = ("def softmax(", "LATE = {'forward': False, 'f1': False}\n\n\ndef softmax(")
LATE_SOFTMAX = ("    shifted = z - z.max(dim=1, keepdim=True).values",
                "    if LATE['forward']:\n        return torch.full_like(z, 1.0 / z.shape[1])\n"
                "    shifted = z - z.max(dim=1, keepdim=True).values")
LAZY_FORWARD = ("        logits = x @ self.weights.T + self.bias  # (N, K)\n        return softmax(logits)",
                "        LATE['forward'] = True\n"
                "        return torch.full((x.shape[0], self.num_classes), 1.0 / self.num_classes)")
LATE_PIECE = ("    classes = torch.arange(num_classes)\n",
              "    if LATE['f1']:\n        return torch.tensor(0.0, dtype=torch.float64)\n"
              "    classes = torch.arange(num_classes)\n")
LAZY_F1 = ("def f1_macro(y_pred, y_true, num_classes):\n    LATE['f1'] = True\n"
           "    return torch.tensor(0.0, dtype=torch.float64)\n")


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_pieces_that_turn_lazy_after_the_method_never_excuse_it():
    points = judged_points({"softmax": [LATE_FLAG, LATE_SOFTMAX], "SoftmaxRegression1": [LAZY_FORWARD],
                            "precision_macro": [LATE_PIECE], "recall_macro": [LATE_PIECE], "f1_macro": LAZY_F1})
    assert_only_lost(points, {"test_SoftmaxRegression1", "test_f1_macro"})
    assert points["test_SoftmaxRegression1"][0] == 0 and points["test_f1_macro"][0] == 0, points
