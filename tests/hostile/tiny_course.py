"""A tiny nbgrader assignment (`double(x)`) in a scratch course, for the grader's tests."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat

from gradekit.authoring import notebooks as authoring
from gradekit.course.directory import REPO_ROOT, Course

LAB = "tiny"
NOTEBOOK = "tiny_double"
HOSTILE_DIR = Path(__file__).parent
SOLUTION = '''def double(x):
    """Return 2 * x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION'''
TESTS = '''check_scalar("double", call("double", double, torch.tensor(2.0)), torch.tensor(4.0))
### BEGIN HIDDEN TESTS
g = make_generator(7)
x = torch.randn(5, generator=g, dtype=torch.float64)
check_tensor("double", call("double", double, x), 2 * x, hint="multiply by two")
### END HIDDEN TESTS'''
SECRET_MARKER = "make_generator(7)"  # only in the hidden tests


def build_tiny_course(root: Path, tests: str = TESTS) -> Course:
    """A released course with one lab: imports, checks, one answer cell, one test cell (3 points, `tests`)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    cells = [
        authoring.markdown("# Double"),
        authoring.readonly("imports", "import os\n\nimport torch\n\ntorch.manual_seed(0)"),
        authoring.checks_cell(),
        authoring.answer("double", SOLUTION),
        authoring.tests("test_double", 3, tests),
    ]
    authoring.write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", cells, "tiny")
    course = Course(root)
    # nbgrader runs `alembic` from PATH when it creates a gradebook: use the venv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = course.nbgrader("generate_assignment", LAB, "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return course


def submission(course: Course, answer_source: str | None) -> nbformat.NotebookNode:
    """The release notebook with the answer cell replaced (None: the blank release)."""
    nb = nbformat.read(course.release / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    if answer_source is not None:
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
                cell.source = answer_source
    return nb


def submit_source(course: Course, student: str, answer_source: str | None) -> Path:
    path = course.submitted / student / LAB / f"{NOTEBOOK}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(submission(course, answer_source), path)
    return path


def hostile_source(name: str, **values: str) -> str:
    """A hostile answer cell from tests/hostile/<name>.py, with __PLACEHOLDERS__ filled in."""
    text = (HOSTILE_DIR / f"{name}.py").read_text()
    for key, value in values.items():
        text = text.replace(f"__{key.upper()}__", value)
    return text
