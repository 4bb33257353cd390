"""Every instructor notebook in source/: structure, and a clean run with all tests passing."""

from __future__ import annotations

import ast
import copy
import re
import sys

import nbformat
import pytest

from gradekit.authoring.notebooks import CHECKS_GRADE_ID, CHECKS_PATH
from gradekit.course.directory import REPO_ROOT, Course
from tests.conftest import NOTEBOOK_WARNINGS, error_and_stderr_outputs, execute_notebook

REPO = Course(REPO_ROOT)
LABS = REPO.labs()
# What a student notebook may import on Colab, beyond the standard library.
COLAB_PACKAGES = {"torch", "numpy", "matplotlib", "seaborn", "sklearn", "pandas"}


def source_notebook(lab: str):
    return nbformat.read(REPO.source / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)


def nbgrader_cells(nb) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def test_there_are_labs():
    assert LABS, "no lab found in source/"


@pytest.mark.parametrize("lab", LABS)
def test_checks_cell_is_notebook_checks_verbatim(lab):
    cells = nbgrader_cells(source_notebook(lab))
    assert CHECKS_GRADE_ID in cells, f"{lab} has no read-only '{CHECKS_GRADE_ID}' cell"
    cell = cells[CHECKS_GRADE_ID]
    assert cell.metadata["nbgrader"]["locked"] and not cell.metadata["nbgrader"]["solution"]
    assert cell.source.strip() == CHECKS_PATH.read_text().strip(), (
        f"{lab}: the checks cell differs from gradekit/authoring/checks_cell.py; rebuild the cell from the module")


@pytest.mark.parametrize("lab", LABS)
def test_every_answer_cell_has_a_test_cell_with_points(lab):
    cells = nbgrader_cells(source_notebook(lab))
    answers = [gid for gid, c in cells.items()
               if c.cell_type == "code" and c.metadata["nbgrader"]["solution"] and not c.metadata["nbgrader"]["grade"]]
    assert answers, f"{lab} has no autograded answer cell"
    for grade_id in answers:
        tests = [gid for gid in cells if gid == f"test_{grade_id}" or gid.startswith(f"test_{grade_id}_")]
        assert tests, f"{lab}: answer cell {grade_id!r} has no test cell test_{grade_id}"
    for grade_id, cell in cells.items():
        meta = cell.metadata["nbgrader"]
        if meta["grade"]:
            assert meta.get("points", 0) > 0, f"{lab}: graded cell {grade_id!r} has no points"
        if meta["grade"] and cell.cell_type == "code":
            assert meta["locked"], f"{lab}: test cell {grade_id!r} must be locked"
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{lab}: test cell {grade_id!r} has no hidden tests"
            assert not re.search(r"^\s*assert\b", cell.source, re.M), (
                f"{lab}: test cell {grade_id!r} uses a bare assert; use the checks (fail, check_tensor, ...)")


@pytest.mark.parametrize("lab", LABS)
def test_notebook_imports_only_what_colab_has(lab):
    stdlib = set(sys.stdlib_module_names)
    for cell in source_notebook(lab).cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in COLAB_PACKAGES or top in stdlib, f"{lab} imports {name}, which Colab does not have"
                assert top != "functorch", f"{lab} imports functorch; use torch.func"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_instructor_notebook_runs_clean(lab, tmp_path):
    """Top to bottom, warnings on: no error, nothing on stderr, every visible and hidden test passes."""
    nb = execute_notebook(copy.deepcopy(source_notebook(lab)), tmp_path, env={"PYTHONWARNINGS": NOTEBOOK_WARNINGS})
    assert error_and_stderr_outputs(nb) == []
