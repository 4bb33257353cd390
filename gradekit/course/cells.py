"""nbgrader's cells as every step reads them: the metadata predicates and the delimited regions.

One rule for the hidden tests everywhere (judge, kernel, feedback, corpus, publish checks), and it is
nbgrader's own: `ClearHiddenTests` hides every line from one that *contains* its configured
`begin_test_delimeter` (default `BEGIN HIDDEN TESTS`) to one containing `end_test_delimeter`, so
`### BEGIN HIDDEN TESTS`, `# BEGIN HIDDEN TESTS` and a course's own spelling are all hidden at release.
Whatever the release hides must never reach the student's kernel or files at grading time, so the
grader reads the same settings (`Delimiters.of(course)`), never a spelling of its own.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gradekit.course.directory import Course


# ---------------------------------------------------------------- metadata predicates


def nbgrader_meta(cell: Mapping[str, Any]) -> dict:
    """A cell's nbgrader metadata; {} when absent or not a dict (a submission's metadata is untrusted)."""
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, Mapping) else None
    return meta if isinstance(meta, dict) else {}


def grade_id_of(cell: Mapping[str, Any]) -> str:
    value = nbgrader_meta(cell).get("grade_id", "")
    return value if isinstance(value, str) else ""


def points(cell: Mapping[str, Any]) -> float:
    try:
        return float(nbgrader_meta(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0


def is_code(cell: Mapping[str, Any]) -> bool:
    return cell.get("cell_type") == "code"


def is_test_cell(cell: Mapping[str, Any]) -> bool:
    """An autograded test: a graded code cell that is not an answer (nbgrader's `is_grade` and not
    `is_solution`, on a code cell)."""
    meta = nbgrader_meta(cell)
    return is_code(cell) and bool(meta.get("grade")) and not meta.get("solution")


def is_answer_cell(cell: Mapping[str, Any]) -> bool:
    """A cell the student writes in (nbgrader's `is_solution`): code answers and written answers."""
    return bool(nbgrader_meta(cell).get("solution"))


def is_locked_cell(cell: Mapping[str, Any]) -> bool:
    return bool(nbgrader_meta(cell).get("locked"))


MAX_STUDENT_CELL = 100_000  # characters of one cell the judge reads for its "by hand" checks
MAX_STUDENT_CELLS = 300


def student_code(cells: Iterable[Mapping[str, Any]]) -> list[str]:
    """The code the student wrote, cell by cell, in order: every code cell that is neither a test nor one of the
    lab's locked cells (answers and cells the student added). Bounded: it is read, as text, by the judge."""
    return [str(cell.get("source", ""))[:MAX_STUDENT_CELL] for cell in cells
            if is_code(cell) and not is_test_cell(cell) and not is_locked_cell(cell)][:MAX_STUDENT_CELLS]


# ---------------------------------------------------------------- delimited regions


@dataclass(frozen=True)
class Delimiters:
    """The solution and hidden-test delimiters of a course: nbgrader's settings, nbgrader's rule
    (a line that contains the delimiter opens or closes its region)."""

    begin_hidden: str = "BEGIN HIDDEN TESTS"
    end_hidden: str = "END HIDDEN TESTS"
    begin_solution: str = "BEGIN SOLUTION"
    end_solution: str = "END SOLUTION"

    @classmethod
    def of(cls, course: Course) -> Delimiters:
        """The delimiters the course's nbgrader_config.py sets (nbgrader's defaults otherwise)."""
        return cls.from_config(course.config())

    @classmethod
    def from_config(cls, config: Any) -> Delimiters:
        from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

        hidden, solutions = ClearHiddenTests(config=config), ClearSolutions(config=config)
        return cls(hidden.begin_test_delimeter, hidden.end_test_delimeter,
                   solutions.begin_solution_delimeter, solutions.end_solution_delimeter)

    # hidden tests

    def has_hidden(self, source: str) -> bool:
        return self.begin_hidden in source

    def strip_hidden(self, source: str) -> str:
        """The source without its hidden-test regions (delimiter lines included): what the release shows
        and what the kernel gets. An unterminated region runs to the end, as in nbgrader."""
        return "\n".join(_region_lines(source, self.begin_hidden, self.end_hidden, inside=False))

    def hidden_lines(self, source: str) -> list[str]:
        """The lines inside the hidden-test regions."""
        return _region_lines(source, self.begin_hidden, self.end_hidden, inside=True)

    def hidden_regions(self, ignore_case: bool = False) -> re.Pattern[str]:
        """A pattern for each whole hidden region (delimiter lines included), to replace it in a page."""
        begin, end = re.escape(self.begin_hidden), re.escape(self.end_hidden)
        flags = re.MULTILINE | re.DOTALL | (re.IGNORECASE if ignore_case else 0)
        return re.compile(rf"^[^\n]*{begin}.*?(^[^\n]*{end}[^\n]*\n?|\Z)", flags)

    # solutions

    def has_solution(self, source: str) -> bool:
        return self.begin_solution in source

    def strip_solution(self, source: str) -> str:
        return "\n".join(_region_lines(source, self.begin_solution, self.end_solution, inside=False))

    def solution_lines(self, source: str) -> list[str]:
        return _region_lines(source, self.begin_solution, self.end_solution, inside=True)

    def without_delimiters(self, source: str) -> str:
        """The instructor's solution as code: the solution delimiter lines dropped, the rest kept."""
        return "\n".join(line for line in source.split("\n")
                         if self.begin_solution not in line and self.end_solution not in line)

    def is_delimiter_line(self, line: str) -> bool:
        return any(d in line for d in (self.begin_hidden, self.end_hidden, self.begin_solution, self.end_solution))


NBGRADER_DEFAULTS = Delimiters()


def _region_lines(source: str, begin: str, end: str, inside: bool) -> list[str]:
    lines, within = [], False
    for line in source.split("\n"):
        if begin in line:
            within = True
        elif end in line:
            within = False
        elif within == inside:
            lines.append(line)
    return lines


# ---------------------------------------------------------------- answers of a notebook file


def answer_sources(data: bytes) -> dict[str, str] | None:
    """grade_id -> source of every answer cell of a notebook file (raw JSON, untrusted); None if unreadable."""
    try:
        nb = json.loads(data)
        answers = {}
        for cell in nb.get("cells", []):
            meta = (cell.get("metadata") or {}).get("nbgrader") or {}
            if meta.get("solution") and isinstance(meta.get("grade_id"), str):
                source = cell.get("source", "")
                answers[meta["grade_id"]] = "".join(source) if isinstance(source, list) else str(source)
        return answers
    except (ValueError, AttributeError, TypeError, RecursionError):
        return None


def is_release_stub(data: bytes, release: dict[str, str]) -> bool:
    """An unchanged copy of the release: every answer cell as released."""
    answers = answer_sources(data)
    if not release or not answers:
        return False
    return all(answers.get(grade_id, source) == source for grade_id, source in release.items())


# ---------------------------------------------------------------- what a cell defines

IPYTHON_LINE = re.compile(r"^\s*[%!?]")


def defined_names(source: str, *, methods: bool = False) -> set[str]:
    """Functions, classes and variables a cell defines at top level; with `methods`, also each class's
    methods, as `Class.method` and bare (the names a failure message may use). Source that does not
    parse (IPython magics, a student's syntax error) falls back on its `def name(` / `class name` lines."""
    try:  # IPython magics and shell lines are not Python: read the cell without them
        tree = ast.parse("\n".join("" if IPYTHON_LINE.match(line) else line for line in source.splitlines()))
    except (SyntaxError, ValueError):
        return set(re.findall(r"^\s*(?:def|class)\s+(\w+)", source, re.MULTILINE))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if methods and isinstance(node, ast.ClassDef):
                functions = [item.name for item in node.body if isinstance(item, ast.FunctionDef)]
                names.update(f"{node.name}.{name}" for name in functions)
                names.update(name for name in functions if not name.startswith("__"))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names
