"""Lab 2 (logistic regression in PyTorch): one mistake costs once.

`LogisticRegression1.train` is judged on its own logic: a train that is right with the student's OWN forward and
backward keeps its points when one of those is wrong (their own test cells take the points), and a wrong train
still loses them. Graded as `gradekit grade` does (the student's cells in a forked process, the test cells in the
judge) and, for the same verdicts, in one Python process.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import asdict

import nbformat
import pytest
from test_corpus import fork_in_fresh_worker

from gradekit.course.directory import REPO_ROOT
from gradekit.proof import corpus

NOTEBOOK = REPO_ROOT / "source" / "lab2" / "lab2_pytorch_logistic_regression.ipynb"
CORPUS = REPO_ROOT / "tests" / "corpus" / "lab2"

# Realistic mistakes, each in one method of the instructor's LogisticRegression1: (replaced text, replacement).
BACKWARD_SIGN = ("errors = (probas - y)", "errors = (y - probas)")  # gradient ascent
BACKWARD_SUM = ("grad_loss_wrt_w = torch.matmul(errors, x) / n", "grad_loss_wrt_w = torch.matmul(errors, x)")
FORWARD_NO_BIAS = ("torch.matmul(x, self.weights.T).flatten() + self.bias", "torch.matmul(x, self.weights.T).flatten()")
# A wrong train: the last, smaller batch is skipped.
TRAIN_DROPS_LAST_BATCH = ("for start in range(0, x.shape[0], batch_size):",
                          "for start in range(0, x.shape[0] - batch_size + 1, batch_size):")


def _solution() -> str:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (source,) = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "LogisticRegression1"]
    return source


def _with_mistakes(*mistakes: tuple[str, str]) -> str:
    source = _solution()
    for right, wrong in mistakes:
        assert source.count(right) == 1, right
        source = source.replace(right, wrong)
    return source


def _graded_through_the_judge(answer: str) -> dict[str, tuple[float, float]]:
    """Points (got, max) of every test cell with `answer` as the LogisticRegression1 cell."""
    cells = [asdict(c) for c in corpus.code_cells(corpus.find_lab("lab2").notebook())]
    cells[corpus.answer_index([corpus.Cell(**c) for c in cells], "LogisticRegression1")]["source"] = answer
    result = fork_in_fresh_worker(cells, timeout=180.0)
    return {c["grade_id"]: (c["points"], c["max_points"]) for c in result["cells"]}


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
@pytest.mark.parametrize("mistake", [BACKWARD_SIGN, BACKWARD_SUM], ids=["sign", "summed_loss"])
def test_a_backward_mistake_costs_once_through_the_judge(mistake):
    points = _graded_through_the_judge(_with_mistakes(mistake))
    assert points["test_LogisticRegression1_backward"][0] == 0, points
    assert points["test_LogisticRegression1_train"] == (5.0, 5.0), points
    lost = {grade_id for grade_id, (got, full) in points.items() if got < full}
    assert lost == {"test_LogisticRegression1_backward"}, points


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_forward_mistake_does_not_cost_train_through_the_judge():
    """A forward without the bias loses forward's points (and those of predict_labels and evaluate, which test
    their own results against the true probabilities), not train's."""
    points = _graded_through_the_judge(_with_mistakes(FORWARD_NO_BIAS))
    assert points["test_LogisticRegression1_forward"][0] == 0, points
    assert points["test_LogisticRegression1_train"] == (5.0, 5.0), points


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_a_wrong_train_still_loses_its_points_through_the_judge():
    """On the student's own wrong backward, a train that drops the last batch is still wrong."""
    points = _graded_through_the_judge(_with_mistakes(BACKWARD_SIGN, TRAIN_DROPS_LAST_BATCH))
    assert points["test_LogisticRegression1_backward"][0] == 0, points
    assert points["test_LogisticRegression1_train"][0] == 0, points
    points = _graded_through_the_judge(_with_mistakes(TRAIN_DROPS_LAST_BATCH))
    lost = {grade_id for grade_id, (got, full) in points.items() if got < full}
    assert lost == {"test_LogisticRegression1_train"}, points


def _failing_test_cells(answer: str) -> dict[str, str]:
    """Run the notebook's code cells in one namespace (grading mode); the failure message of every failing test."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict = {}
    failures = {}
    previous = os.environ.get("NBGRADER_EXECUTION")
    os.environ["NBGRADER_EXECUTION"] = "autograde"
    try:
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if cell.cell_type != "code":
                continue
            source = answer if meta.get("grade_id") == "LogisticRegression1" else cell.source
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(source, f"<cell {meta.get('grade_id')}>", "exec"), namespace)  # noqa: S102
            except Exception as error:  # the next cells still run, as in nbgrader
                if meta.get("grade"):
                    failures[meta["grade_id"]] = str(error)
    finally:
        if previous is None:
            del os.environ["NBGRADER_EXECUTION"]
        else:
            os.environ["NBGRADER_EXECUTION"] = previous
    return failures


def test_one_mistake_costs_once_in_process():
    assert set(_failing_test_cells(_with_mistakes(BACKWARD_SIGN))) == {"test_LogisticRegression1_backward"}
    failures = _failing_test_cells(_with_mistakes(BACKWARD_SIGN, TRAIN_DROPS_LAST_BATCH))
    assert set(failures) == {"test_LogisticRegression1_backward", "test_LogisticRegression1_train"}
    assert failures["test_LogisticRegression1_train"].startswith("LogisticRegression1.train")


# A backward that turns lazy once train has run (a flag train sets), and a train that updates nothing:
# "right with your own methods" must not pay train's points for it.
LATE_BACKWARD = ("        return grad_loss_wrt_w, grad_loss_wrt_b\n",
                 "        if getattr(self, 'late', False):\n"
                 "            return torch.zeros_like(grad_loss_wrt_w), torch.zeros_like(grad_loss_wrt_b)\n"
                 "        return grad_loss_wrt_w, grad_loss_wrt_b\n")
LAZY_TRAIN = ("                self.weights = self.weights - learning_rate * grad_w\n"
              "                self.bias = self.bias - learning_rate * grad_b\n",
              "                type(self).late = True\n")


@pytest.mark.slow
@pytest.mark.xdist_group("corpus")
def test_methods_that_turn_lazy_after_train_never_excuse_it():
    points = _graded_through_the_judge(_with_mistakes(LATE_BACKWARD, LAZY_TRAIN))
    lost = {grade_id for grade_id, (got, full) in points.items() if got < full}
    assert lost == {"test_LogisticRegression1_train"} and points["test_LogisticRegression1_train"][0] == 0, points


def _visible_failures(answers: dict[str, str]) -> dict[str, str]:
    """The student's view: the notebook's code cells with the hidden tests removed, in one namespace, answer
    cells replaced; the message of every test cell whose visible checks fail."""
    from gradekit.course.cells import NBGRADER_DEFAULTS

    nb = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict = {}
    failures = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code":
            continue
        source = answers.get(meta.get("grade_id"), NBGRADER_DEFAULTS.strip_hidden(cell.source))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(source, f"<cell {meta.get('grade_id')}>", "exec"), namespace)  # noqa: S102
        except Exception as error:
            if meta.get("grade"):
                failures[meta["grade_id"]] = str(error)
    return failures


def test_a_missing_zero_grad_gets_the_zero_grad_hint_first():
    """The visible checks of train_model2 say what a missing zero_grad looks like before anything else."""
    no_zero_grad = (CORPUS / "LogisticRegression2" / "chaff_no_zero_grad.py").read_text()
    failures = _visible_failures({"LogisticRegression2": no_zero_grad})
    assert set(failures) == {"test_LogisticRegression2_train_model2"}, failures
    message = failures["test_LogisticRegression2_train_model2"]
    assert "weight after 2 epochs" in message and "ADDS to .grad" in message, message
