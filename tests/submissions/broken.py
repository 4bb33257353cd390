"""Damaged and unusable submissions, generated in a temporary folder (the 300 MB one is never committed).

`BROKEN` maps a case name to (writer, words the InvalidSubmission reason must contain).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from nbformat.notebooknode import NotebookNode


def _json(nb: NotebookNode | dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False)


def invalid_json(nb: NotebookNode, path: Path) -> None:
    path.write_text(_json(nb)[:-200], encoding="utf-8")  # truncated download


def empty(nb: NotebookNode, path: Path) -> None:
    path.write_bytes(b"")


def whitespace(nb: NotebookNode, path: Path) -> None:
    path.write_bytes(b"\n \n")


def binary(nb: NotebookNode, path: Path) -> None:
    path.write_bytes(b"%PDF-1.4\n\x00\x01\x02" + bytes(range(256)) * 20)


def zip_renamed(nb: NotebookNode, path: Path) -> None:
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 64)


def nbformat3(nb: NotebookNode, path: Path) -> None:
    old = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "lab"},
           "worksheets": [{"cells": [{"cell_type": "code", "input": "1 + 1", "language": "python",
                                      "outputs": [], "metadata": {}}], "metadata": {}}]}
    path.write_text(_json(old), encoding="utf-8")


def r_kernel(nb: NotebookNode, path: Path) -> None:
    data = json.loads(_json(nb))
    data["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    data["metadata"]["language_info"] = {"name": "R"}
    path.write_text(_json(data), encoding="utf-8")


def latin1(nb: NotebookNode, path: Path) -> None:
    data = json.loads(_json(nb))
    data["cells"][0]["source"] = "# Régression logistique, élève: Zoë"
    path.write_bytes(_json(data).encode("latin-1"))


def not_a_notebook(nb: NotebookNode, path: Path) -> None:
    path.write_text(json.dumps({"name": "lab1", "answers": [1, 2, 3]}), encoding="utf-8")


def huge_outputs(nb: NotebookNode, path: Path, megabytes: int = 300) -> None:
    """A student printed in a loop: `megabytes` of stream output, written in chunks."""
    data = json.loads(_json(nb))
    head, tail = _json(data).split('"outputs": []', 1)
    line = json.dumps("loss 0.123456789 " * 6 + "\n")
    chunk = ",".join([line] * 10000).encode()
    with path.open("wb") as handle:
        handle.write(head.encode() + b'"outputs": [{"output_type": "stream", "name": "stdout", "text": [')
        for index in range(megabytes * 2**20 // len(chunk) + 1):
            handle.write((b"," if index else b"") + chunk)
        handle.write(b"]}]" + tail.encode())


def missing(nb: NotebookNode, path: Path) -> None:
    """Nothing written: the student submitted no notebook."""


BROKEN: dict[str, tuple[Callable[[NotebookNode, Path], None], tuple[str, ...]]] = {
    "invalid_json": (invalid_json, ("invalid JSON", "line")),
    "empty": (empty, ("empty",)),
    "whitespace": (whitespace, ("empty",)),
    "binary": (binary, ("binary",)),
    "zip_renamed": (zip_renamed, ("binary",)),
    "nbformat3": (nbformat3, ("nbformat 3",)),
    "r_kernel": (r_kernel, ("R kernel", "not Python")),
    "latin1": (latin1, ("not UTF-8",)),
    "not_a_notebook": (not_a_notebook, ("not a Jupyter notebook",)),
    "huge_outputs_300mb": (huge_outputs, ("300 MB", "limit", "outputs")),
    "missing": (missing, ("missing",)),
}
