"""What a grading run says of each student: the statuses, and `reports/<lab>/status.json`.

`gradekit grade` writes the file; feedback, the report, the LMS export, the bench and the demo read it
here, through one tolerant reader (a damaged file reads as "no status": the gradebook still has the
scores). `Status` values are strings, so the JSON file and any code comparing with the words agree.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradekit.course.files import write_text

if TYPE_CHECKING:
    from gradekit.course.directory import Course


class Status(StrEnum):
    GRADED = "graded"
    TIMED_OUT = "timed out"
    CRASHED = "crashed"
    INVALID = "invalid"
    MISSING = "missing"
    GRADER_ERROR = "grader error"  # the grader failed for this student: not scored, the previous grade stays


# The notebook ran: its score says what the student achieved.
SCORED = (Status.GRADED, Status.TIMED_OUT, Status.CRASHED)


@dataclass
class StudentStatus:
    student: str
    status: str
    reason: str = ""
    repairs: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    score: float | None = None
    max_score: float | None = None
    late_penalty: float = 0.0  # nbgrader's, already in what the LMS gets: score - late_penalty
    seconds: float | None = None  # the notebook in its sandbox, judge included
    judge_seconds: float | None = None
    judge_cpu: float | None = None
    # The ledger (gradekit.course.ledger): what this grade is a function of.
    input_digest: str = ""  # the submission folder as staged
    tests_digest: str = ""  # the lab's tests in the gradebook
    # The kernel runtime the notebook ran in (gradekit.sandbox.runtime): "colab: Python 3.13.0, torch 2.11.0".
    runtime: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> StudentStatus | None:
        """One entry of status.json; None for an entry that is not one (a damaged or foreign file)."""
        if not isinstance(data, dict) or not isinstance(data.get("student"), str):
            return None
        known = {f.name for f in fields(cls)}
        entry = cls(**{k: v for k, v in data.items() if k in known and k != "student"}, student=data["student"])
        entry.status = str(entry.status or "")
        entry.reason = str(entry.reason or "")
        entry.repairs = [str(r) for r in entry.repairs] if isinstance(entry.repairs, list) else []
        entry.flags = [str(f) for f in entry.flags] if isinstance(entry.flags, list) else []
        entry.input_digest, entry.tests_digest = str(entry.input_digest or ""), str(entry.tests_digest or "")
        entry.runtime = str(entry.runtime or "")
        return entry


@dataclass
class StatusFile:
    """reports/<lab>/status.json: the last run's word on each student, and the run's timings."""

    lab: str
    sandboxed: bool = True
    seconds: float = 0.0
    phases: dict[str, list[float]] = field(default_factory=dict)
    students: dict[str, StudentStatus] = field(default_factory=dict)

    def get(self, student: str) -> StudentStatus | None:
        return self.students.get(student)


def read_status(course: Course, lab: str) -> StatusFile:
    """The lab's status file; empty when there is none or it cannot be read."""
    path = course.status_file(lab)
    empty = StatusFile(lab)
    if not path.is_file():
        return empty
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return empty
    if not isinstance(data, dict):
        return empty
    entries = [StudentStatus.from_dict(e) for e in data.get("students", []) if isinstance(data.get("students"), list)]
    phases = data.get("phases") if isinstance(data.get("phases"), dict) else {}
    return StatusFile(lab, bool(data.get("sandboxed", True)), float(data.get("seconds") or 0.0),
                      {k: [float(v) for v in values if isinstance(v, int | float)]
                       for k, values in phases.items() if isinstance(values, list)},
                      {e.student: e for e in entries if e is not None})


def write_status(course: Course, status: StatusFile, partial: bool = False) -> Path:
    """Write the lab's status file whole (a temporary file, then a rename); a regrade of some students
    (`partial`) keeps the other students' entries."""
    path = course.status_file(status.lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    students = dict(status.students)
    if partial:
        students = {**read_status(course, status.lab).students, **students}
    data = {"lab": status.lab, "sandboxed": status.sandboxed, "seconds": round(status.seconds, 2),
            "phases": {k: [round(v, 3) for v in values] for k, values in status.phases.items()},
            "students": [asdict(students[s]) for s in sorted(students)]}
    write_text(path, json.dumps(data, indent=2) + "\n")
    return path
