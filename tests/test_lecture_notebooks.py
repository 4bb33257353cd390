"""Lecture notebooks: each runs top to bottom without error or stderr, and the committed copy
is executed (figures visible) and in sync with a fresh run."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from gradekit.course.directory import REPO_ROOT
from tests.conftest import NOTEBOOK_WARNINGS, runtime_kernel

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
# Cells tagged like this hold the results a reader compares (e.g. the two models' parameters);
# in a notebook without such tags, every text/plain result is compared.
SYNC_TAG = "check-sync"

pytestmark = pytest.mark.slow


def _committed(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    notebook = copy.deepcopy(_committed(path))
    # Run from an empty folder, like a fresh Colab session: the notebook must not need files. Warnings
    # on (the kernel inherits the environment): a deprecation warning shows on stderr and fails the run.
    saved = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = NOTEBOOK_WARNINGS
    try:
        NotebookClient(notebook, timeout=120, kernel_name=runtime_kernel(),
                       resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        if saved is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = saved
    return notebook


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def executed(request, tmp_path_factory) -> tuple[Path, nbformat.NotebookNode]:
    """(path, a fresh execution of the committed notebook); each notebook runs once per module."""
    return request.param, _execute(request.param, tmp_path_factory.mktemp("lecture"))


def _code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _problems(notebook: nbformat.NotebookNode) -> list[str]:
    """Errors and anything written to stderr (warnings included), with the cell number."""
    found = []
    for index, cell in enumerate(_code_cells(notebook)):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"code cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                found.append(f"code cell {index} wrote to stderr: {output.text[:300]}")
    return found


def _sync_results(notebook: nbformat.NotebookNode) -> list[str]:
    """The text/plain results of the cells tagged SYNC_TAG (all cells when none is tagged)."""
    cells = _code_cells(notebook)
    tagged = [cell for cell in cells if SYNC_TAG in cell.metadata.get("tags", [])]
    return [output["data"]["text/plain"]
            for cell in (tagged or cells)
            for output in cell.get("outputs", [])
            if output.output_type == "execute_result" and "text/plain" in output.get("data", {})]


def test_runs_without_error_or_stderr(executed):
    path, notebook = executed
    problems = _problems(notebook)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_copy_is_executed_with_figures(path):
    notebook = _committed(path)
    cells = _code_cells(notebook)
    unexecuted = [index for index, cell in enumerate(cells) if cell.source.strip() and cell.execution_count is None]
    assert not unexecuted, f"{path.name}: code cells {unexecuted} were never run; commit the executed notebook"
    images = sum("image/png" in output.get("data", {}) for cell in cells for output in cell.get("outputs", []))
    assert images >= 1, f"{path.name}: no figure is embedded; execute the notebook and save its outputs"
    assert not _problems(notebook), f"{path.name}: the committed outputs show errors or stderr"


def test_committed_results_match_a_fresh_run(executed):
    path, notebook = executed
    committed = _sync_results(_committed(path))
    assert committed, f"{path.name}: no result to compare; tag the cells that show key results '{SYNC_TAG}'"
    assert committed == _sync_results(notebook), (
        f"{path.name}: the committed results differ from a fresh run; re-execute and commit the notebook")
