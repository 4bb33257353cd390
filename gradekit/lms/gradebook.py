"""nbgrader's gradebook as the LMS round trip needs it: students, due dates, extensions, zeros.

Late work is nbgrader's own machinery: `collect` writes each submission's time into
`submitted/<student>/<lab>/timestamp.txt`; autograde stores it, compares it with the assignment's
due date plus the student's extension (both gradebook fields), and `AssignLatePenalties` asks
`c.AssignLatePenalties.plugin_class` for the penalty. The course config (nbgrader_config.py) holds:

    c.LateWork.duedates = {"lab1": "2026-03-06 23:59:00 Europe/Paris"}
    c.LateWork.extensions = {"lab1": {"12345": 48}}      # hours, per LMS student id
    c.LateSubmissionPlugin.penalty_method = "zero"        # nbgrader's: late work scores 0
    # or a share per started day late:
    c.AssignLatePenalties.plugin_class = "gradekit.lms.gradebook.PenaltyPerDay"
    c.PenaltyPerDay.fraction_per_day = 0.1

`apply_dates` writes the due date into the gradebook's Assignment.duedate and the extensions into
SubmittedAssignment.extension (nbgrader's `grant_extension`); `collect` and
`python -m gradekit.lms dates` call it. A due date set with `nbgrader db assignment add --duedate`
works too (the config, when it names the lab, wins).
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Dict, Float
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from gradekit.course import Course
from gradekit.lms.identity import Identity


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


def course_config(course: Course) -> Config:
    config = Config()
    if (course.root / "nbgrader_config.py").is_file():
        config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(course.root)).load_config())
    return config


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


def has_gradebook(course: Course) -> bool:
    """Whether the course has a gradebook (SQLite file or a database server)."""
    check = getattr(course, "has_gradebook", None)
    return bool(check()) if callable(check) else course.gradebook.exists()


def _gradebook(course: Course):
    from nbgrader.api import Gradebook

    warnings.filterwarnings("ignore", module="sqlalchemy")
    return Gradebook(course.db_url)


def due_date(course: Course, lab: str) -> datetime | None:
    """The lab's due date (aware, UTC): the course config's, else the gradebook's, else None."""
    configured = LateWork(config=course_config(course)).duedates.get(lab)
    if configured:
        return _parse_due(str(configured))
    if not course.has_gradebook():
        return None
    from nbgrader.api import MissingEntry

    with _gradebook(course) as gradebook:
        try:
            due = gradebook.find_assignment(lab).duedate
        except MissingEntry:
            return None
    return due.replace(tzinfo=UTC) if due else None  # nbgrader stores naive UTC


def split_name(name: str) -> tuple[str, str]:
    """(first, last) from "Smith, Jane" (Canvas's sortable form) or "Jane Smith"; one word is a first name."""
    if "," in name:
        last, first = (part.strip() for part in name.split(",", 1))
        return first, last
    first, _, last = name.strip().partition(" ")
    return first, last.strip()


def register_students(course: Course, lab: str, identities: list[Identity | None]) -> int:
    """Students (with the LMS's name, e-mail and id) and their submission rows, in nbgrader's gradebook.

    The formgrader and `nbgrader export` then show real names; an extension can be granted
    before grading. Returns how many were registered (0 without a gradebook or assignment).
    """
    from nbgrader.api import MissingEntry

    if not course.has_gradebook():
        return 0
    done = 0
    with warnings.catch_warnings(), _gradebook(course) as gradebook:
        warnings.simplefilter("ignore")  # SQLAlchemy autoflush notes from nbgrader's add_submission
        try:
            gradebook.find_assignment(lab)
        except MissingEntry:
            return 0
        for identity in identities:
            if identity is None or identity.student is None:
                continue
            first, last = split_name(identity.name)
            # nbgrader's columns are 128 characters
            gradebook.update_or_create_student(identity.student, first_name=first[:128] or None,
                                               last_name=last[:128] or None,
                                               email=identity.email[:128] or None,
                                               lms_user_id=identity.user[:128])
            gradebook.update_or_create_submission(lab, identity.student)
            done += 1
    return done


def apply_dates(course: Course, lab: str) -> list[str]:
    """Write the configured due date and extensions of `lab` into the gradebook; returns what changed."""
    from nbgrader.api import MissingEntry

    late = LateWork(config=course_config(course))
    if not course.has_gradebook() or (lab not in late.duedates and lab not in late.extensions):
        return []
    changes = []
    with _gradebook(course) as gradebook:
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


# ---------------------------------------------------------------- submissions that cannot be graded


def ungradable_path(course: Course, lab: str) -> Path:
    return course.root / "reports" / lab / "ungradable.json"


def load_ungradable(course: Course, lab: str) -> dict[str, dict]:
    path = ungradable_path(course, lab)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def record_ungradable(course: Course, lab: str, student: str, reason: str) -> float | None:
    """Give `student` 0 points for `lab` in the gradebook, with the reason; returns the previous score.

    A resubmission that cannot be graded must not leave the previous score standing. The old
    submission row (with its autograded and manual grades) is replaced by a fresh one in which
    every graded cell is scored 0 and every comment says why, so nbgrader's own views (formgrader,
    `nbgrader export`) and ours show 0 and the reason. The submission time and extension are
    kept; the old autograded notebook and feedback move to reports/<lab>/collect-history/.
    """
    from nbgrader.api import MissingEntry

    previous = None
    # nbgrader's add_submission builds its rows under SQLAlchemy autoflush, which warns (harmlessly,
    # plain `nbgrader autograde` too) about objects not yet in the session.
    with warnings.catch_warnings(), _gradebook(course) as gradebook:
        warnings.simplefilter("ignore")
        gradebook.update_or_create_student(student)
        kept: dict = {}
        try:
            old = gradebook.find_submission(lab, student)
            previous = max(0.0, float(old.score) - float(old.late_submission_penalty or 0))
            kept = {"timestamp": old.timestamp, "extension": old.extension}
            gradebook.remove_submission(lab, student)
        except MissingEntry:
            pass
        submission = gradebook.add_submission(lab, student, **{k: v for k, v in kept.items() if v is not None})
        note = f"Not graded: {reason}"[:1000]
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score, grade.manual_score, grade.needs_manual_grade = 0.0, None, False
            for comment in notebook.comments:
                comment.auto_comment = note
        gradebook.db.commit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    history = course.root / "reports" / lab / "collect-history" / student
    for kind, folder in (("autograded", course.autograded), ("feedback", course.feedback)):
        old_folder = folder / student / lab
        if old_folder.is_dir() and not old_folder.is_symlink():
            history.mkdir(parents=True, exist_ok=True)
            shutil.move(str(old_folder), history / f"{stamp}_{kind}")
    records = load_ungradable(course, lab)
    records[student] = {"reason": reason, "previous_score": previous,
                        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path = ungradable_path(course, lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return previous


def clear_ungradable(course: Course, lab: str, student: str) -> None:
    """Forget an earlier 'could not be graded' once the student's notebook has been graded."""
    records = load_ungradable(course, lab)
    if records.pop(student, None) is not None:
        ungradable_path(course, lab).write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n",
                                                encoding="utf-8")
