"""Prepare a submission for grading: load it safely and repair what Colab and LMSs break.

Interface used by `gradekit.grade` (stable):
    prepare_submission(path, release_nb) -> PreparedSubmission  (raises InvalidSubmission)
The submission file itself is never modified; the repaired notebook is a new object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode


class InvalidSubmission(Exception):
    """A submission that cannot be graded; the message is the reason shown to the instructor."""


@dataclass
class PreparedSubmission:
    notebook: NotebookNode
    repairs: list[str] = field(default_factory=list)  # what was changed, one line each
    flags: list[str] = field(default_factory=list)  # suspected tampering, for the instructor


def load_submission(path: Path) -> NotebookNode:
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as error:  # nbformat raises many types; all mean "not a notebook"
        raise InvalidSubmission(f"not a readable notebook: {error}") from None


def prepare_submission(path: Path, release_nb: NotebookNode) -> PreparedSubmission:
    return PreparedSubmission(load_submission(path))
