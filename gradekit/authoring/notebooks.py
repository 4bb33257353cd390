"""Build instructor notebooks from Python: one constructor per kind of nbgrader cell.

Instructors usually edit `source/` notebooks in Jupyter with nbgrader's "Create Assignment"
toolbar; these constructors produce exactly the same metadata, for labs written as code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

CHECKS_PATH = Path(__file__).with_name("checks_cell.py")
CHECKS_GRADE_ID = "checks"


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _cell_id(seed: str) -> str:
    # Stable ids keep `git diff` of notebooks and the release byte-for-byte reproducible.
    return hashlib.sha1(seed.encode()).hexdigest()[:12]


def markdown(text: str) -> NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(source: str) -> NotebookNode:
    """An ordinary code cell (given code, plots): students may edit it, nothing is graded."""
    return nbformat.v4.new_code_cell(source.strip("\n"))


def readonly(grade_id: str, source: str) -> NotebookNode:
    """Given code the autograder restores from the source (imports, data, helpers)."""
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.metadata["nbgrader"] = _nbgrader(grade_id, grade=False, solution=False, locked=True)
    return cell


def answer(grade_id: str, source: str) -> NotebookNode:
    """An autograded answer cell; the solution sits between ### BEGIN/END SOLUTION."""
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.metadata["nbgrader"] = _nbgrader(grade_id, grade=False, solution=True, locked=False)
    return cell


def tests(grade_id: str, points: float, source: str) -> NotebookNode:
    """A locked test cell worth `points`; hidden tests sit between ### BEGIN/END HIDDEN TESTS."""
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    cell.metadata["nbgrader"] = _nbgrader(grade_id, grade=True, solution=False, locked=True, points=points)
    return cell


def written(grade_id: str, points: float, model_answer: str) -> NotebookNode:
    """A manually graded markdown answer; the model answer is replaced by a stub in the release."""
    text = "### BEGIN SOLUTION\n" + model_answer.strip("\n") + "\n### END SOLUTION"
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["nbgrader"] = _nbgrader(grade_id, grade=True, solution=True, locked=False, points=points)
    return cell


def checks_cell() -> NotebookNode:
    """The read-only cell holding `checks_cell.py`, the vocabulary of every test cell."""
    return readonly(CHECKS_GRADE_ID, CHECKS_PATH.read_text())


def write_notebook(path: str | Path, cells: list[NotebookNode], title: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "colab": {"provenance": [], "toc_visible": True},
    }
    for index, cell in enumerate(cells):
        cell.id = _cell_id(f"{title}:{index}:{cell.metadata.get('nbgrader', {}).get('grade_id', '')}")
    nb.cells = cells
    nbformat.validate(nb)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def refresh_checks_cell(path: str | Path) -> bool:
    """Rewrite the checks cell of an instructor notebook from checks_cell.py; True if it changed."""
    nb = nbformat.read(str(path), as_version=4)
    wanted = CHECKS_PATH.read_text().strip("\n")
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == CHECKS_GRADE_ID and cell.source != wanted:
            cell.source = wanted
            nbformat.write(nb, str(path))
            return True
    return False
