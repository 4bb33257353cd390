"""Late work: due dates and extensions from the course config into nbgrader's gradebook, and penalties.

Late work is nbgrader's own machinery: `collect` writes each submission's time into
`submitted/<student>/<lab>/timestamp.txt`; autograde stores it, compares it with the assignment's
due date plus the student's extension (both gradebook fields), and `AssignLatePenalties` asks
`c.AssignLatePenalties.plugin_class` for the penalty. The course config (nbgrader_config.py) holds:

    c.LateWork.duedates = {"lab1": "2026-03-06 23:59:00 Europe/Paris"}
    c.LateWork.extensions = {"lab1": {"12345": 48}}      # hours, per LMS student id
    c.LateSubmissionPlugin.penalty_method = "zero"        # nbgrader's: late work scores 0
    # or a share per started day late:
    c.AssignLatePenalties.plugin_class = "gradekit.scoring.late.PenaltyPerDay"
    c.PenaltyPerDay.fraction_per_day = 0.1

`apply_dates` writes the due date into the gradebook's Assignment.duedate and the extensions into
SubmittedAssignment.extension (nbgrader's `grant_extension`); `collect` and
`gradekit lms dates` call it. A due date set with `nbgrader db assignment add --duedate`
works too (the config, when it names the lab, wins).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Dict, Float
from traitlets.config import Configurable

from gradekit.course.directory import Course


class LateWork(Configurable):
    """Due dates and per-student extensions, in the course's nbgrader_config.py."""

    duedates = Dict(help="lab -> due date ('2026-03-06 23:59:00 Europe/Paris'; no zone means UTC)").tag(config=True)
    extensions = Dict(help="lab -> {student id: extension in hours}").tag(config=True)


class PenaltyPerDay(LateSubmissionPlugin):
    """A share of the notebook's score per started day late (nbgrader late-penalty plugin)."""

    fraction_per_day = Float(0.1, help="share of the score lost per started day late").tag(config=True)
    grace_minutes = Float(0.0, help="lateness forgiven, in minutes").tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        if total_seconds_late <= self.grace_minutes * 60:
            return None
        days = math.ceil(total_seconds_late / 86400)
        return min(score, score * self.fraction_per_day * days)


def _parse_due(value: str) -> datetime:
    """'2026-03-06 23:59:00 Europe/Paris', '2026-03-06T23:59:00+01:00', or no zone (UTC)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from dateutil import parser

    words = value.split()
    zone = None
    if len(words) > 1 and "/" in words[-1] or words[-1:] == ["UTC"]:
        try:
            zone, value = ZoneInfo(words[-1]), " ".join(words[:-1])
        except (ZoneInfoNotFoundError, ValueError):
            zone = None
    moment = parser.parse(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    return moment.astimezone(UTC)


def due_date(course: Course, lab: str) -> datetime | None:
    """The lab's due date (aware, UTC): the course config's, else the gradebook's, else None."""
    configured = LateWork(config=course.config()).duedates.get(lab)
    if configured:
        return _parse_due(str(configured))
    if not course.has_gradebook():
        return None
    from nbgrader.api import MissingEntry

    with course.open_gradebook() as gradebook:
        try:
            due = gradebook.find_assignment(lab).duedate
        except MissingEntry:
            return None
    return due.replace(tzinfo=UTC) if due else None  # nbgrader stores naive UTC


def apply_dates(course: Course, lab: str) -> list[str]:
    """Write the configured due date and extensions of `lab` into the gradebook; returns what changed."""
    from nbgrader.api import MissingEntry

    late = LateWork(config=course.config())
    if not course.has_gradebook() or (lab not in late.duedates and lab not in late.extensions):
        return []
    changes = []
    with course.open_gradebook() as gradebook:
        try:
            assignment = gradebook.find_assignment(lab)
        except MissingEntry:
            return []
        if lab in late.duedates:
            due = _parse_due(str(late.duedates[lab]))
            if assignment.duedate != due.replace(tzinfo=None):  # nbgrader stores naive UTC
                gradebook.update_or_create_assignment(lab, duedate=due.strftime("%Y-%m-%d %H:%M:%S UTC"))
                changes.append(f"{lab} due {due:%Y-%m-%d %H:%M} UTC")
        if lab in late.extensions:
            hours = {str(k): float(v) for k, v in dict(late.extensions[lab]).items()}
            for submission in gradebook.assignment_submissions(lab):
                student = submission.student.id
                extension = timedelta(hours=hours[student]) if hours.get(student) else None
                if submission.extension != extension:
                    submission.extension = extension
                    changes.append(f"{student}: extension {hours.get(student, 0):g} h")
            gradebook.db.commit()
    return changes




