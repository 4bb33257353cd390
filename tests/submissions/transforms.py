"""What Colab, LMSs and students do to a notebook, as functions from a solved notebook to a submission.

Each transform takes a deep copy of a solved release notebook (NotebookNode) and returns the
modified notebook; `write_submission` writes it the way that editor would (nbformat version,
indentation). `TRANSFORMS` are the single edits, `COMBINED` chains several, as a real Colab round
trip does. Every one of them must still grade to full marks after `prepare_submission`.
"""

from __future__ import annotations

import copy
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

from nbformat.notebooknode import NotebookNode

from .tiny_lab import release_notebook

Transform = Callable[[NotebookNode], NotebookNode]
_rng = random.Random(1234)


def _random_id(length: int = 12) -> str:
    return "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def _index(nb: NotebookNode, grade_id: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def strip_nbgrader(nb: NotebookNode) -> NotebookNode:
    """Colab 'Save a copy' of an edited notebook: nbgrader metadata and lock flags gone."""
    for cell in nb.cells:
        for key in ("nbgrader", "editable", "deletable"):
            cell.metadata.pop(key, None)
    return nb


def colab_metadata(nb: NotebookNode) -> NotebookNode:
    """Colab's own notebook and cell metadata, outputs, and its nbformat 4.0 without cell ids."""
    nb.metadata["colab"] = {"provenance": [{"file_id": _random_id(33), "timestamp": 1700000000000}],
                            "collapsed_sections": [], "name": "Copy of tinylab_functions.ipynb"}
    nb.metadata["accelerator"] = "GPU"
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"1a2b": {"model_name": "x"}}}
    nb.nbformat_minor = 0
    for count, cell in enumerate(nb.cells, start=1):
        cell.pop("id", None)
        cell.metadata["id"] = _random_id()
        if cell.cell_type == "code":
            cell.metadata["colab"] = {"base_uri": "https://localhost:8080/", "height": 35}
            cell.metadata["outputId"] = f"{_random_id(8)}-{_random_id(4)}-{_random_id(4)}"
            cell.execution_count = count
            cell.outputs = [{"output_type": "stream", "name": "stdout", "text": "ran on colab\n"}]
    return nb


def new_cell_ids(nb: NotebookNode) -> NotebookNode:
    for cell in nb.cells:
        cell["id"] = _random_id(8)
    return nb


def delete_test_cell(nb: NotebookNode) -> NotebookNode:
    del nb.cells[_index(nb, "test_sigmoid")]
    return nb


def delete_readonly_cell(nb: NotebookNode) -> NotebookNode:
    del nb.cells[_index(nb, "checks")]
    return nb


def duplicate_test_cell(nb: NotebookNode) -> NotebookNode:
    index = _index(nb, "test_mean_std")
    nb.cells.insert(index + 1, copy.deepcopy(nb.cells[index]))
    nb.cells[index + 1]["id"] = _random_id()
    return nb


def duplicate_answer_stub_after(nb: NotebookNode) -> NotebookNode:
    """Student duplicated the stub, solved the first copy; the untouched stub runs after it."""
    index = _index(nb, "sigmoid")
    stub = copy.deepcopy(release_stub(nb, "sigmoid"))
    stub["id"] = _random_id()
    nb.cells.insert(index + 1, stub)
    return nb


def duplicate_answer_stub_before(nb: NotebookNode) -> NotebookNode:
    index = _index(nb, "mean_std")
    stub = copy.deepcopy(release_stub(nb, "mean_std"))
    stub["id"] = _random_id()
    nb.cells.insert(index, stub)
    return nb


def answer_to_markdown(nb: NotebookNode) -> NotebookNode:
    cell = nb.cells[_index(nb, "sigmoid")]
    cell.cell_type = "markdown"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    return nb


def answer_to_raw(nb: NotebookNode) -> NotebookNode:
    cell = nb.cells[_index(nb, "mean_std")]
    cell.cell_type = "raw"
    cell.pop("outputs", None)
    cell.pop("execution_count", None)
    return nb


def reorder(nb: NotebookNode) -> NotebookNode:
    """The answer dragged below its test cell, and two markdown cells swapped."""
    answer, test = _index(nb, "sigmoid"), _index(nb, "test_sigmoid")
    nb.cells[answer], nb.cells[test] = nb.cells[test], nb.cells[answer]
    markdowns = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "nbgrader" not in c.metadata]
    nb.cells[markdowns[0]], nb.cells[markdowns[1]] = nb.cells[markdowns[1]], nb.cells[markdowns[0]]
    return nb


def edited_locked_cells(nb: NotebookNode) -> NotebookNode:
    """Colab ignores 'not editable': the student weakened a visible test (nbgrader restores it)."""
    cell = nb.cells[_index(nb, "test_sigmoid")]
    cell.source = cell.source.replace("check_tensor(", "# check_tensor(", 1)
    return nb


def nbformat_44(nb: NotebookNode) -> NotebookNode:
    nb.nbformat_minor = 4
    for cell in nb.cells:
        cell.pop("id", None)
    return nb


# The release notebook a transform may need (for stubs); set by `transform_all`.
_RELEASE: dict[str, NotebookNode] = {}


def release_stub(nb: NotebookNode, grade_id: str) -> NotebookNode:
    release = _RELEASE["release"]
    cell = release.cells[_index(release, grade_id)]
    return copy.deepcopy(cell)


TRANSFORMS: dict[str, list[Transform]] = {
    "untouched": [],
    "strip_nbgrader": [strip_nbgrader],
    "colab_metadata": [colab_metadata],
    "new_cell_ids": [new_cell_ids],
    "strip_keep_ids": [strip_nbgrader],  # ids intact: matched by cell id
    "delete_test_cell": [delete_test_cell],
    "delete_readonly_cell": [delete_readonly_cell],
    "duplicate_test_cell": [duplicate_test_cell],
    "duplicate_answer_stub_after": [duplicate_answer_stub_after],
    "duplicate_answer_stub_before": [duplicate_answer_stub_before],
    "answer_to_markdown": [answer_to_markdown],
    "answer_to_raw": [answer_to_raw],
    "reorder": [reorder],
    "edited_locked_cells": [edited_locked_cells],
    "nbformat_44": [nbformat_44],
    "combined_colab": [duplicate_answer_stub_after, duplicate_test_cell, answer_to_markdown, reorder,
                       edited_locked_cells, strip_nbgrader, new_cell_ids, colab_metadata],
    "combined_stripped": [duplicate_answer_stub_before, delete_readonly_cell, delete_test_cell, answer_to_raw,
                          strip_nbgrader, new_cell_ids, nbformat_44],
}


def transformed(solved: NotebookNode, course_release: NotebookNode, name: str) -> NotebookNode:
    _RELEASE["release"] = course_release
    nb = copy.deepcopy(solved)
    for transform in TRANSFORMS[name]:
        nb = transform(nb)
    return nb


def write_submission(nb: NotebookNode, path: Path) -> Path:
    """Write without validation (these notebooks are deliberately not what nbgrader expects)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_all(course, root: Path, solved: NotebookNode) -> dict[str, Path]:
    """Every transformed submission as a file under `root`, by transform name."""
    release = release_notebook(course)
    return {name: write_submission(transformed(solved, release, name), root / f"{name}.ipynb")
            for name in TRANSFORMS}
