"""Exercises written "by hand": the library function that does the job costs that exercise's points.

`written_by_hand` (the checks cell) reads the answer's code, never runs it: in the student's notebook from the
cells they ran (IPython's `In`), in the judge from the cells handed in (`gradekit.course.cells.student_code`),
helpers included. These tests pin what counts as a use (aliases, `from` imports, methods, getattr, a helper in
another cell) and what does not (the same name as a local variable, `self.backward`, another exercise, a
comparison with the library outside the function), then the verdicts through the judge.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from gradekit.authoring.notebooks import CHECKS_PATH
from gradekit.course.cells import student_code
from gradekit.course.directory import REPO_ROOT
from gradekit.judge.judge import Judge
from gradekit.sandbox.runtime import course_runtime
from gradekit.untrusted.bridge import Bridge

CHECKS: dict = {}
exec(CHECKS_PATH.read_text(), CHECKS)
SIGMOID = ("torch.sigmoid", "torch.special", ".sigmoid", "torch.nn")
AUTOGRAD = CHECKS["AUTOGRAD"]


def uses(name: str, cells: list[str], avoid=SIGMOID, exercises=()) -> list[str] | None:
    return CHECKS["_library_calls"](name, cells, avoid, list(exercises))


@pytest.mark.parametrize("cell, used", [
    ("def sigmoid(x):\n    return torch.sigmoid(x)", ["torch.sigmoid"]),
    ("def sigmoid(x):\n    return x.sigmoid()", [".sigmoid"]),
    ("def sigmoid(x):\n    return torch.special.expit(x)", ["torch.special"]),
    ("import torch.nn.functional as G\ndef sigmoid(x):\n    return G.sigmoid(x)", [".sigmoid", "torch.nn"]),
    ("from torch import sigmoid as s\ndef sigmoid(x):\n    return s(x)", ["torch.sigmoid"]),
    ("sigmoid = torch.sigmoid", ["torch.sigmoid"]),
    ("def sigmoid(x):\n    return getattr(torch, 'sig' 'moid')(x)", ["torch.sigmoid"]),
    ("def sigmoid(x):\n    return __import__('torch.nn').nn.functional.sigmoid(x)", [".sigmoid", "torch.nn"]),
    ("if True:\n    def sigmoid(x):\n        return torch.sigmoid(x)", ["torch.sigmoid"]),
])
def test_library_calls_are_found_however_they_are_spelled(cell, used):
    assert uses("sigmoid", [cell]) == used


@pytest.mark.parametrize("cell", [
    "def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))",
    "def sigmoid(x):\n    return 0.5 * (1 + torch.tanh(x / 2))",
    # the library outside the function: a comparison the student is welcome to make
    "def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))\nprint(torch.sigmoid(torch.ones(1)) - sigmoid(torch.ones(1)))",
    # a local variable spelled like a top-level name bound by the library
    "y = torch.sigmoid(torch.zeros(2))\ndef sigmoid(y):\n    return 1 / (1 + torch.exp(-y))",
])
def test_hand_written_answers_use_nothing(cell):
    assert uses("sigmoid", [cell]) == []


def test_a_helper_in_another_cell_is_read_but_another_exercise_is_not():
    helper = "_logistic = torch.special.expit"
    answer = "def sigmoid(x):\n    return _logistic(x)"
    assert uses("sigmoid", [helper, answer]) == ["torch.special"]
    # logistic_regression calls the student's sigmoid: a mistake there costs in sigmoid's test only
    composed = "def logistic_regression(x, w, b):\n    return sigmoid(x @ w + b)"
    assert uses("logistic_regression", ["sigmoid = torch.sigmoid", composed], exercises=["sigmoid"]) == []
    assert uses("logistic_regression", ["sigmoid = torch.sigmoid", composed]) == ["torch.sigmoid"]


def test_methods_the_class_defines_are_not_the_library():
    cell = ("class Model:\n"
            "    def backward(self, x):\n        return x\n"
            "    def train(self, x):\n        return self.backward(x)\n"
            "    def cheat(self, loss):\n        loss.backward()\n")
    assert uses("Model.train", [cell], AUTOGRAD) == []
    assert uses("Model.cheat", [cell], AUTOGRAD) == [".backward"]
    assert uses("Model", [cell], AUTOGRAD) == [".backward"]
    assert uses("Model.missing", [cell], AUTOGRAD) == []  # nothing to read: nothing used


def test_the_last_definition_counts_and_a_missing_one_is_none():
    first = "def sigmoid(x):\n    return torch.sigmoid(x)"
    second = "def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))"
    assert uses("sigmoid", [first, second]) == []
    assert uses("sigmoid", [second, first]) == ["torch.sigmoid"]
    assert uses("sigmoid", ["def other(x):\n    return x", "this is not Python ("]) is None


def test_exercises_are_read_from_the_checks_calls():
    cells = ['written_by_hand("sigmoid", avoid=("torch.sigmoid",))',
             'written_by_hand("Model.backward", avoid=AUTOGRAD)', "written_by_hand(name_in_a_variable, ())"]
    assert CHECKS["exercises_by_hand"](cells) == ["Model", "sigmoid"]


def test_student_code_is_the_answers_and_added_cells_bounded():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import torch"), nbformat.v4.new_code_cell("def f(x):\n    return x"),
                nbformat.v4.new_code_cell("check(f)"), nbformat.v4.new_markdown_cell("text"),
                nbformat.v4.new_code_cell("x" * 200_000)]
    nb.cells[0].metadata["nbgrader"] = {"locked": True, "grade_id": "imports"}
    nb.cells[1].metadata["nbgrader"] = {"solution": True, "grade_id": "f"}
    nb.cells[2].metadata["nbgrader"] = {"grade": True, "locked": True, "grade_id": "test_f", "points": 1}
    code = student_code(nb.cells)
    assert code[0] == nb.cells[1].source and len(code) == 2 and 0 < len(code[1]) < 200_000


# ---------------------------------------------------------------- through the judge

TEST_SIGMOID = """
import torch
check_tensor("sigmoid", call("sigmoid", sigmoid, torch.tensor([0.0])), torch.tensor([0.5]))
written_by_hand("sigmoid", avoid=("torch.sigmoid", "torch.special", ".sigmoid", "torch.nn"),
                hint="build it from torch.exp.")
"""


def judged(cells: list[str], handed_in: list[str] | None = None, runtime_python: str | None = None):
    """The verdict on TEST_SIGMOID for a notebook whose code cells are `cells` (run in a namespace here), handed in
    as `handed_in` (default: the same), run by `runtime_python`."""
    namespace: dict = {"__name__": "__main__"}
    for cell in ["import torch", *cells]:
        exec(cell, namespace)
    bridge = Bridge(namespace)
    judge = Judge(lambda message: json.loads(bridge.serve(json.dumps(message))),
                  {"checks": CHECKS_PATH.read_text(), "test_sigmoid": TEST_SIGMOID},
                  cells if handed_in is None else handed_in, runtime_python)
    assert judge.run("checks", False).passed
    return judge.run("test_sigmoid", True)


def test_the_shortcut_loses_the_points_with_a_message_and_the_hand_written_answer_keeps_them():
    assert judged(["def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))"]).passed
    shortcut = judged(["def sigmoid(x):\n    return torch.sigmoid(x)"])
    assert not shortcut.passed and shortcut.ename == "CheckFailed"
    assert shortcut.message.startswith("sigmoid: uses `torch.sigmoid`: this exercise asks you to write it by hand")
    assert "Hint: build it from torch.exp." in shortcut.message


def test_the_judge_reads_the_handed_in_cells_not_the_kernels_say():
    # The kernel's history is the student's to change; the judge reads what was handed in.
    helper = judged(["_s = torch.special.expit", "def sigmoid(x):\n    return _s(x)", "In = ['']"])
    assert not helper.passed and "`torch.special`" in helper.message
    hidden = judged(["exec('def sigmoid(x):\\n    return torch.sigmoid(x)')"])
    assert not hidden.passed and "no cell of your notebook defines it" in hidden.message


# An f-string reusing its quotes is Python 3.12+: it runs on Colab (3.13) but is not Python 3.11, the judge's.
NEW_SYNTAX = 'def sigmoid(x):\n    print(f"{ {"z": 1}["z"] }")\n    return BODY'


@pytest.mark.parametrize("body, passed", [("torch.sigmoid(x)", False), ("1 / (1 + torch.exp(-x))", True)])
def test_a_cell_in_the_runtimes_newer_syntax_is_read_by_the_runtimes_parser(body, passed):
    runtime = course_runtime(REPO_ROOT)
    handed_in = [NEW_SYNTAX.replace("BODY", body)]
    kernel = [handed_in[0].replace('f"{ {"z": 1}["z"] }"', "1")]  # what it computes, in 3.11 here
    with pytest.raises(SyntaxError):
        compile(handed_in[0], "cell", "exec")
    # Without the runtime's parser the judge could not read the cell: the definition would seem missing.
    unread = judged(kernel, handed_in)
    assert not unread.passed and "no cell of your notebook defines it" in unread.message
    verdict = judged(kernel, handed_in, runtime.python)
    assert verdict.passed is passed
    if not passed:
        assert "uses `torch.sigmoid`" in verdict.message
