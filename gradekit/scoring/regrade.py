"""What a grading run changed: every student's test-cell scores before and after, compared.

`gradekit grade` takes a `snapshot` of the lab's autograded cells (nbgrader's code grade cells: the test
cells) before it writes to the gradebook and another after it, and `diff` compares them. `write_csv`
records the result in `reports/<lab>/regrade-<UTC time>.csv` (one row per student and cell that changed,
students graded for the first time included, with an empty `before`), and `RegradeDiff.summary` is the
line the command prints: who moved up, who moved down, and the largest single change.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gradekit.course.files import atomic_open
from gradekit.course.safe_text import csv_safe

if TYPE_CHECKING:
    from nbgrader.api import Gradebook

CSV_HEADER = ["student", "cell", "before", "after", "change"]
TOLERANCE = 1e-9  # scores are sums of cell points: anything smaller is float noise, not a change

Scores = dict[tuple[str, str], float]  # (student, test cell) -> points


@contextmanager
def _opened(db_url_or_gradebook: str | Gradebook) -> Iterator[Gradebook]:
    """The gradebook given, or nbgrader's gradebook at a URL, opened and closed here."""
    if not isinstance(db_url_or_gradebook, str):
        yield db_url_or_gradebook
        return
    from nbgrader.api import Gradebook

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's models
        with Gradebook(db_url_or_gradebook) as gradebook:
            yield gradebook


def snapshot(db_url_or_gradebook: str | Gradebook, lab: str) -> Scores:
    """Every student's score of every test cell of `lab` (nbgrader's `Grade.score`: the manual score if
    there is one, else the autograded one). A cell nobody has scored yet (a submission `collect` registered,
    not graded) is left out: no score is not a score of 0."""
    from nbgrader.api import Assignment, Grade, GradeCell, Student, SubmittedAssignment, SubmittedNotebook

    with _opened(db_url_or_gradebook) as gradebook:
        # One query for the whole class (a grade at a time would be one query per student).
        rows = (gradebook.db.query(Student.id, GradeCell.name, Grade.score)
                .select_from(Grade)
                .join(GradeCell, Grade.cell_id == GradeCell.id)
                .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
                .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
                .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
                .join(Student, SubmittedAssignment.student_id == Student.id)
                .filter(Assignment.name == lab, GradeCell.cell_type == "code")
                .filter((Grade.auto_score.isnot(None)) | (Grade.manual_score.isnot(None)))
                .all())
    return {(student, cell): float(score) for student, cell, score in rows}


@dataclass(frozen=True)
class CellChange:
    """One student's score of one test cell, before and after a run (None: not scored then)."""

    student: str
    cell: str
    before: float | None
    after: float | None

    @property
    def change(self) -> float:
        return (self.after or 0.0) - (self.before or 0.0)


def _signed(value: float) -> str:
    """+2, −4 (a true minus sign, as a person reads it)."""
    return f"{value:+g}".replace("-", "\u2212")


def _students(count: int) -> str:
    return f"{count} student{'' if count == 1 else 's'}"


@dataclass
class RegradeDiff:
    """The test-cell scores a run changed. `rows` are sorted by student and cell; `first_graded` are the
    students who had no score at all before the run (their rows have `before` None)."""

    rows: list[CellChange] = field(default_factory=list)
    first_graded: list[str] = field(default_factory=list)

    def movers(self) -> dict[str, float]:
        """Students graded before whose scores changed -> their net change (0 when ups and downs cancel)."""
        first = set(self.first_graded)
        net: dict[str, float] = {}
        for row in self.rows:
            if row.student not in first:
                net[row.student] = net.get(row.student, 0.0) + row.change
        return net

    def summary(self) -> str:
        """One line: who moved (up, down, the largest single change and where), who was graded for the first
        time. A first grading says only the latter."""
        parts = []
        movers = self.movers()
        if movers:
            up = sum(1 for change in movers.values() if change > TOLERANCE)
            down = sum(1 for change in movers.values() if change < -TOLERANCE)
            even = len(movers) - up - down
            counts = [f"{up} up", f"{down} down"] + ([f"{even} even"] if even else [])
            first = set(self.first_graded)
            largest = max((row for row in self.rows if row.student not in first), key=lambda row: abs(row.change))
            parts.append(f"{_students(len(movers))} moved: {', '.join(counts)}, "
                         f"largest {_signed(largest.change)} on {largest.cell}")
        if self.first_graded:
            parts.append(f"{_students(len(self.first_graded))} graded for the first time")
        return "; ".join(parts) or "no test-cell score changed"


def diff(before: Scores, after: Scores) -> RegradeDiff:
    """What changed from `before` to `after` (two `snapshot`s of one lab)."""
    rows = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old is None or new is None or abs(new - old) > TOLERANCE:
            rows.append(CellChange(key[0], key[1], old, new))
    graded_before = {student for student, _ in before}
    first_graded = sorted({student for student, _ in after} - graded_before)
    return RegradeDiff(rows, first_graded)


def _number(value: float | None) -> str:
    return "" if value is None else f"{round(value, 6):g}"


def csv_path(folder: Path, when: datetime | None = None) -> Path:
    """`folder/regrade-<UTC time>.csv`, e.g. regrade-20261205T041500Z.csv; a second run within the same second
    gets `-2`, `-3`, ... rather than replacing the first one's record."""
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path, number = folder / f"regrade-{stamp}.csv", 1
    while path.exists():
        number += 1
        path = folder / f"regrade-{stamp}-{number}.csv"
    return path


def write_csv(regrade: RegradeDiff, folder: Path, when: datetime | None = None) -> Path:
    """Write `regrade` to `csv_path(folder, when)`, whole or not at all; returns the path."""
    path = csv_path(folder, when)
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for row in regrade.rows:
            # Student ids are folder names under submitted/: one starting with `=` must stay text.
            writer.writerow([csv_safe(row.student), csv_safe(row.cell), _number(row.before), _number(row.after),
                             _number(row.change)])
    return path
