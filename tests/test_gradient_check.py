"""The student's gradient check (checks cell `gradient_check`) and how a failed check shows in IPython.

`gradient_check` compares gradients the student derived with central finite differences and with
torch.func.grad of the stated loss; lab 1's visible checks of compute_gradients and compute_gradients_v2 use it.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from gradekit.authoring.notebooks import CHECKS_PATH

CHECKS: dict = {}
exec(CHECKS_PATH.read_text(), CHECKS)
gradient_check, CheckFailed = CHECKS["gradient_check"], CHECKS["CheckFailed"]

g = torch.Generator().manual_seed(5)
X = torch.randn(7, 3, generator=g, dtype=torch.float64)
Y = torch.tensor([[1.0], [0.0], [1.0], [0.0], [0.0], [1.0], [1.0]], dtype=torch.float64)
W, B = torch.randn(3, 1, generator=g, dtype=torch.float64), torch.randn(1, 1, generator=g, dtype=torch.float64)


def mean_bce(w, b):
    return F.binary_cross_entropy(torch.sigmoid(X @ w + b), Y)


def derived(w, b):
    error = torch.sigmoid(X @ w + b) - Y
    return X.T @ error / len(X), error.mean(dim=0, keepdim=True)


def test_a_right_derivation_passes_and_prints_tiny_relative_errors(capsys):
    gradient_check("compute_gradients", derived, mean_bce, (W, B), labels=("dw", "db"))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["compute_gradients (dw)", "compute_gradients (db)"]
    errors = [float(number) for line in lines for number in re.findall(r"\d\.\de[+-]\d+", line)]
    assert len(errors) == 4 and max(errors) < 1e-8


@pytest.mark.parametrize("mistake, message", [
    (lambda w, b: (derived(w, b)[0] * len(X), derived(w, b)[1]), "(dw): differs from the derivative of the loss"),
    (lambda w, b: (-derived(w, b)[0], derived(w, b)[1]), "(dw): differs from the derivative of the loss"),
    (lambda w, b: (derived(w, b)[0].T, derived(w, b)[1]), "(dw): returned (1, 3); expected shape (3, 1)"),
    (lambda w, b: (derived(w, b)[0],), "returned 1 gradient(s); expected 2"),
])
def test_a_wrong_derivation_fails_with_what_is_wrong(mistake, message):
    with pytest.raises(CheckFailed) as failed:
        gradient_check("compute_gradients", mistake, mean_bce, (W, B), labels=("dw", "db"))
    assert message in str(failed.value)


def test_parameters_of_any_layout_are_checked_in_float64():
    transposed = torch.randn(1, 3, generator=g, dtype=torch.float32).T  # (3, 1), not contiguous
    gradient_check("compute_gradients", derived, mean_bce, (transposed, B.float()), labels=("dw", "db"))


def test_a_failed_check_shows_as_one_line_in_ipython(monkeypatch, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # no Run-all wrapper: the error itself is shown
    shell = InteractiveShell.instance()
    try:
        shell.run_cell(CHECKS_PATH.read_text())
        result = shell.run_cell('def helper():\n    fail("sigmoid", "returned nan.", "mind large |z|.")\nhelper()')
    finally:
        InteractiveShell.clear_instance()
    shown = capsys.readouterr().out
    assert isinstance(result.error_in_exec, AssertionError)
    assert "CheckFailed: sigmoid: returned nan." in shown
    assert "Traceback" not in shown and "helper" not in shown and "line" not in shown
