"""A two-function lab in the course's format, fast to grade, for the collect/repair/feedback/report tests.

`build_tiny_course(root)` writes source/tinylab/, releases it with nbgrader and returns the Course;
`solved_notebook(course)` is the release notebook with correct answers (what a good student submits).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.authoring.notebooks import answer, checks_cell, code, markdown, readonly, tests, write_notebook, written
from gradekit.course.directory import REPO_ROOT, Course

LAB = "tinylab"
NOTEBOOK = "tinylab_functions"
HIDDEN_SECRET = "HIDDEN_SECRET_7731"  # appears only in hidden tests: feedback must never show it

IMPORTS = '''
import os

import torch
import torch.nn.functional as F

SHOW_PLOTS = not os.environ.get("NBGRADER_EXECUTION")
torch.manual_seed(0)
'''

SIGMOID_SOLUTION = '''
def sigmoid(z: torch.Tensor) -> torch.Tensor:
    """Elementwise logistic function 1 / (1 + exp(-z)), same shape as z."""
    ### BEGIN SOLUTION
    return 1 / (1 + torch.exp(-z))
    ### END SOLUTION
'''

SIGMOID_TESTS = f'''
z = torch.tensor([[0.0], [2.0]])
check_tensor("sigmoid", sigmoid(z), torch.tensor([[0.5], [0.8807971]]), hint="1 / (1 + exp(-z))")
### BEGIN HIDDEN TESTS
{HIDDEN_SECRET} = 1
g = make_generator(3)
for n in (1, 7):
    z = torch.randn(n, 1, generator=g, dtype=torch.float64) * 5
    check_tensor("sigmoid", call("sigmoid", sigmoid, z), torch.sigmoid(z),
                 hint="the logistic function is 1 / (1 + exp(-z)); mind the sign of z.")
### END HIDDEN TESTS
'''

MEAN_STD_SOLUTION = '''
def mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column mean and standard deviation (1/N) of x (N, D), each of shape (D,)."""
    ### BEGIN SOLUTION
    mean = x.mean(dim=0)
    std = ((x - mean) ** 2).mean(dim=0).sqrt()
    return mean, std
    ### END SOLUTION
'''

MEAN_STD_TESTS = f'''
x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
mean, std = mean_std(x)
check_tensor("mean_std (mean)", mean, torch.tensor([2.0, 4.0]))
check_tensor("mean_std (std)", std, torch.tensor([1.0, 2.0]), hint="divide by N, not N - 1.")
### BEGIN HIDDEN TESTS
{HIDDEN_SECRET} = 2
g = make_generator(5)
x = torch.randn(9, 3, generator=g, dtype=torch.float64)
mean, std = call("mean_std", mean_std, x)
check_tensor("mean_std (mean)", mean, x.mean(dim=0))
check_tensor("mean_std (std)", std, x.std(dim=0, correction=0), hint="divide by N, not N - 1.")
### END HIDDEN TESTS
'''


def source_cells() -> list[NotebookNode]:
    return [
        markdown("# Tiny lab\nTwo functions, graded by visible and hidden tests."),
        readonly("imports", IMPORTS),
        checks_cell(),
        markdown("## Sigmoid\n$\\sigma(z) = 1 / (1 + e^{-z})$"),
        answer("sigmoid", SIGMOID_SOLUTION),
        tests("test_sigmoid", 2, SIGMOID_TESTS),
        markdown("## Mean and standard deviation"),
        answer("mean_std", MEAN_STD_SOLUTION),
        tests("test_mean_std", 3, MEAN_STD_TESTS),
        markdown("## Why standardise?"),
        written("answer_why", 1, "So that gradient descent uses one step size for every feature."),
        code('if SHOW_PLOTS:\n    print(sigmoid(torch.zeros(3)))'),
    ]


def build_tiny_course(root: Path) -> Course:
    """A released scratch course holding only the tiny lab."""
    # nbgrader's Gradebook runs the `alembic` script: the venv's bin/ must be on PATH.
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ["PATH"]
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", source_cells(), title=LAB)
    course = Course(root)
    course.nbgrader("generate_assignment", LAB, "--force")
    return course


def release_notebook(course: Course) -> NotebookNode:
    return nbformat.read(course.release / LAB / f"{NOTEBOOK}.ipynb", as_version=4)


def solution_text(grade_id: str) -> str:
    """The instructor's answer for an answer cell, without the solution markers."""
    text = {"sigmoid": SIGMOID_SOLUTION, "mean_std": MEAN_STD_SOLUTION}[grade_id].strip("\n")
    return "\n".join(line for line in text.splitlines() if "### " not in line)


def solved_notebook(course: Course) -> NotebookNode:
    """The release notebook with correct answers typed in, as a student would."""
    nb = release_notebook(course)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in ("sigmoid", "mean_std"):
            cell.source = solution_text(grade_id)
        elif grade_id == "answer_why":
            cell.source = "Features on one scale make one learning rate work for all of them."
    return nb
