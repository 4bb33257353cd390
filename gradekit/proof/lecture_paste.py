"""What a lab pays for code copied from the lectures: the lectures' definitions pasted into the lab, graded.

A student who has the lecture notebooks open can paste them. For every answer cell of a lab that defines a
name one of the lectures (`notebooks/*.ipynb`) also defines, the cell becomes the lectures' imports and their
definitions of those names, verbatim; every other answer cell stays as the release gives it (its stub). The
notebook is then graded like a corpus entry (`gradekit.proof.corpus.fork_and_grade`: the student's process
and the trusted judge). The share of the lab's autograded points it earns is what copying the lectures is
worth; the labs keep it at 10% or less (tests/test_lecture_paste.py): they ask what the lectures do not show.
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import defined_names, grade_id_of, is_answer_cell
from gradekit.course.directory import REPO_ROOT
from gradekit.proof.corpus import DEFAULT_TIMEOUT, Lab, code_cells, fork_and_grade

LECTURES = REPO_ROOT / "notebooks"
RELEASE = REPO_ROOT / "release"
MAX_SHARE = 0.10  # of a lab's autograded points that the lectures' code may earn


@dataclass
class PasteResult:
    lab: str
    points: float
    max_points: float
    pasted: dict[str, list[str]] = field(default_factory=dict)  # answer cell -> lecture names pasted into it
    crash: str = ""

    @property
    def share(self) -> float:
        return self.points / self.max_points if self.max_points else 0.0


def lecture_definitions(lectures: list[Path]) -> tuple[list[str], dict[str, str]]:
    """The lectures' top-level imports and their functions and classes (name -> source), in lecture order."""
    imports, definitions = [], {}
    for path in lectures:
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type != "code":
                continue
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in tree.body:
                text = ast.get_source_segment(cell.source, node) or ""
                if isinstance(node, ast.Import | ast.ImportFrom) and text not in imports:
                    imports.append(text)
                elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                    definitions[node.name] = text
    return imports, definitions


def pasted_notebook(lab: Lab, lectures: list[Path], release: Path) -> tuple[NotebookNode, dict[str, list[str]]]:
    """The lab's notebook with every answer cell either the lectures' definitions of its names or its stub."""
    imports, definitions = lecture_definitions(lectures)
    (release_path,) = sorted((release / lab.name).glob("*.ipynb"))
    stubs = {grade_id_of(c): c.source for c in nbformat.read(str(release_path), as_version=4).cells
             if is_answer_cell(c) and c.cell_type == "code"}
    nb = nbformat.from_dict(json.loads(json.dumps(lab.notebook())))
    pasted = {}
    for cell in nb.cells:
        if cell.cell_type != "code" or not is_answer_cell(cell):
            continue
        grade_id = grade_id_of(cell)
        names = [name for name in definitions if name in defined_names(cell.source)]
        if names:
            cell.source = "\n".join(imports + [""] + [definitions[name] + "\n\n" for name in names])
            pasted[grade_id] = names
        else:
            cell.source = stubs.get(grade_id, cell.source)
    return nb, pasted


def lecture_paste(lab: Lab, lectures: list[Path] | None = None, release: Path = RELEASE,
                  timeout: float = DEFAULT_TIMEOUT) -> PasteResult:
    """Grade the lab with the lectures' code pasted in (see the module's docstring)."""
    lectures = sorted(LECTURES.glob("*.ipynb")) if lectures is None else lectures
    nb, pasted = pasted_notebook(lab, lectures, release)
    cells = [asdict(c) for c in code_cells(nb, lab.delimiters)]
    result = fork_and_grade(cells, timeout)
    max_points = sum(c["points"] for c in cells if c["is_test"])
    if "crash" in result:
        return PasteResult(lab.name, 0.0, max_points, pasted, result["crash"])
    return PasteResult(lab.name, sum(c["points"] for c in result["cells"]), max_points, pasted)
