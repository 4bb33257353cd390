"""Grades and feedback back to the LMS, in files it imports as they are.

* Canvas: a gradebook import CSV (`Student, ID, SIS User ID, SIS Login ID, Section`, one column per
  lab, a `Points Possible` row), matched by Canvas's user id. A lab's column is the Canvas column of
  the roster (`Lab 1 (4242)`) whose name matches the lab, or `--column lab1="Lab 1 (4242)"`;
  otherwise the lab id, which Canvas imports as a new assignment.
* Moodle: per lab, the assignment's grading worksheet (`Identifier` = `Participant <id>`, `Grade`,
  `Feedback comments`), imported with "Upload grading worksheet"; with the worksheet as roster,
  its rows come back unchanged except for the grade and the comment.
* plain: one row per student, per lab the points, the maximum, the status and the reason.

Every student is there: graded, late (nbgrader's penalty subtracted), not gradable (0 and the
reason), missing (0, or blank with `--missing blank`, and "no submission"). Scores are nbgrader's,
manual grades included.

Feedback: per lab, a zip of our feedback pages (never a hidden test: `gradekit.delivery.feedback`) named for
the LMS's bulk upload: Canvas `<name>_<userid>_<attachmentid>_<notebook>-feedback.html` (Canvas
reads the first number as the user), Moodle `<Full Name>_<participantid>_assignsubmission_file_...`
(Moodle's own pattern, read back by its feedback-zip importer), plain `<student>/<lab>/<notebook>.html`.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from gradekit.course.collected import load_state
from gradekit.course.directory import Course
from gradekit.course.roster import CANVAS_ASSIGNMENT_COLUMN, Identity, Roster, load_roster
from gradekit.course.safe_text import csv_safe
from gradekit.course.status import Status, StudentStatus, read_status
from gradekit.delivery.feedback import write_feedback
from gradekit.scoring.ungradable import load_ungradable

MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                 "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


@dataclass
class LabResult:
    score: float | None  # None: blank in the CSV
    status: str  # graded, not graded yet, invalid, timed out, crashed, missing
    reason: str = ""


@dataclass
class StudentResult:
    student: str
    identity: Identity
    labs: dict[str, LabResult] = field(default_factory=dict)

    def total(self) -> float:
        return sum(r.score or 0.0 for r in self.labs.values())


def points(value: float | None) -> str:
    return "" if value is None else f"{round(value, 2):g}"


def _status_entries(course: Course, lab: str) -> dict[str, StudentStatus]:
    return read_status(course, lab).students


def lab_states(course: Course, labs: list[str]) -> dict[str, dict]:

    return {lab: load_state(course, lab) for lab in labs}


def _identity(student: str, states: dict[str, dict], roster: Roster | None) -> Identity:
    for state in states.values():
        if student in state:
            record = state[student]
            identity = Identity(record["lms"], record["user"], record.get("name", ""), record.get("email", ""),
                                record.get("sis_id", ""), record.get("login", ""), record.get("section", ""))
            return identity.merged(roster.students.get(student) if roster else None)
    if roster and student in roster.students:
        return roster.students[student]
    return Identity("nbgrader", student)


def results(course: Course, labs: list[str], missing: str = "zero",
            roster: Roster | None = None) -> tuple[list[StudentResult], dict[str, float]]:
    """Every student of the course, per lab: score, status and reason; and each lab's maximum."""
    from nbgrader.api import MissingEntry

    roster = roster or load_roster(course.root)
    states = lab_states(course, labs)
    statuses = {lab: _status_entries(course, lab) for lab in labs}
    ungradable = {lab: load_ungradable(course, lab) for lab in labs}
    maxima: dict[str, float] = {}
    submissions: dict[tuple[str, str], tuple[float, float, bool, bool]] = {}
    students: set[str] = set(roster.students) if roster else set()
    with course.open_gradebook() as gradebook:
        students |= {s.id for s in gradebook.students}
        for lab in labs:
            try:
                maxima[lab] = float(gradebook.find_assignment(lab).max_score)
            except MissingEntry:
                maxima[lab] = 0.0
                continue
            for submission in gradebook.assignment_submissions(lab):
                grades = [g for nb in submission.notebooks for g in nb.grades]
                graded = any(g.auto_score is not None or g.manual_score is not None for g in grades)
                submissions[(lab, submission.student.id)] = (
                    float(submission.score), float(submission.late_submission_penalty or 0.0), graded,
                    bool(submission.needs_manual_grade))
    for lab in labs:
        students |= set(states[lab]) | set(statuses[lab]) | set(ungradable[lab])
    rows = []
    for student in sorted(students):
        row = StudentResult(student, _identity(student, states, roster))
        for lab in labs:
            row.labs[lab] = _lab_result(submissions.get((lab, student)), statuses[lab].get(student),
                                        ungradable[lab].get(student), missing)
        rows.append(row)
    return rows, maxima


def _lab_result(submission: tuple | None, status: StudentStatus | None, ungradable: dict | None,
                missing: str) -> LabResult:
    absent = 0.0 if missing == "zero" else None
    # The last grading run decides: an invalid resubmission is 0 even if an old score is still stored.
    if status and status.status == Status.INVALID:
        return LabResult(0.0, "invalid", f"could not be graded: {status.reason}")
    if ungradable and (status is None or status.status != Status.GRADED):
        return LabResult(0.0, "invalid", f"could not be graded: {ungradable.get('reason', '')}")
    if submission is None:
        return LabResult(absent, "missing", "no submission")
    score, penalty, graded, manual = submission
    if not graded:
        return LabResult(absent, "not graded yet", "collected, not graded yet")
    reasons = []
    if penalty:
        reasons.append(f"late: {points(penalty)} point(s) deducted")
    if manual:
        reasons.append("written answers not graded yet")
    state = "graded"
    if status and status.status in (Status.TIMED_OUT, Status.CRASHED):
        state = str(status.status)
        reasons.append(f"{state}: {status.reason}; cells that did not run score 0")
    return LabResult(max(0.0, score - penalty), state, "; ".join(reasons))


# ---------------------------------------------------------------- grade files


def canvas_columns(labs: list[str], roster: Roster | None, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """lab -> Canvas column header: an override, else the roster's Canvas column named like the lab."""
    def key(text: str) -> str:
        return re.sub(r"[\s_\-]+", "", text).lower()

    columns = {}
    for lab in labs:
        match = [h for h in (roster.columns if roster else {}) if key(CANVAS_ASSIGNMENT_COLUMN.match(h)["name"])
                 == key(lab)]
        columns[lab] = (overrides or {}).get(lab) or (match[0] if len(match) == 1 else lab)
    return columns


def write_canvas_csv(path: Path, rows: list[StudentResult], maxima: dict[str, float],
                     columns: dict[str, str]) -> list[str]:
    """Canvas gradebook import; returns the students left out (not Canvas users)."""
    labs = list(columns)
    left_out = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CANVAS_FIXED, *(columns[lab] for lab in labs)])
        writer.writerow(["Points Possible", "", "", "", "", *(points(maxima.get(lab)) for lab in labs)])
        for row in rows:
            identity = row.identity
            if identity.lms != "canvas" or not identity.user.isdigit():
                left_out.append(row.student)
                continue
            writer.writerow([csv_safe(identity.name or identity.user), identity.user, csv_safe(identity.sis_id),
                             csv_safe(identity.login), csv_safe(identity.section),
                             *(points(row.labs[lab].score) for lab in labs)])
    return left_out


def write_moodle_csv(path: Path, lab: str, rows: list[StudentResult], maximum: float,
                     roster: Roster | None) -> list[str]:
    """Moodle grading worksheet for one lab; returns the students left out (not Moodle participants)."""
    header = roster.header if roster and roster.kind == "moodle" and roster.header else MOODLE_HEADER
    left_out = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            identity = row.identity
            if identity.lms != "moodle" or not identity.user.isdigit():
                left_out.append(row.student)
                continue
            result = row.labs[lab]
            values = dict(identity.extra) if identity.extra else {}
            values.setdefault("Identifier", f"Participant {identity.user}")
            values.setdefault("Full name", identity.name)
            values.setdefault("Email address", identity.email)
            values["Grade"] = points(result.score)
            values["Maximum Grade"] = points(maximum)
            values["Feedback comments"] = result.reason
            writer.writerow([csv_safe(values.get(column, "")) for column in header])
    return left_out


def write_plain_csv(path: Path, rows: list[StudentResult], maxima: dict[str, float]) -> None:
    labs = list(maxima)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "lms", "lms_user_id", "name", "email", "sis_id", "section",
                         *(f"{lab} {what}" for lab in labs for what in ("points", "max", "status", "reason")),
                         "total", "max total"])
        for row in rows:
            identity = row.identity
            cells = []
            for lab in labs:
                result = row.labs[lab]
                cells += [points(result.score), points(maxima[lab]), result.status, csv_safe(result.reason)]
            writer.writerow([csv_safe(row.student), identity.lms, csv_safe(identity.user), csv_safe(identity.name),
                             csv_safe(identity.email), csv_safe(identity.sis_id), csv_safe(identity.section),
                             *cells, points(row.total()), points(sum(maxima.values()))])


def export_grades(course: Course, labs: list[str], missing: str = "zero",
                  overrides: dict[str, str] | None = None, out: Path | None = None) -> dict[str, Path]:
    """Write reports/lms/{grades.csv, canvas-grades.csv, moodle-<lab>.csv}; returns what was written."""
    roster = load_roster(course.root)
    rows, maxima = results(course, labs, missing, roster)
    out = out or course.lms_exports
    out.mkdir(parents=True, exist_ok=True)
    written = {"plain": out / "grades.csv"}
    write_plain_csv(written["plain"], rows, maxima)
    kinds = {row.identity.lms for row in rows} | ({roster.kind} if roster else set())
    if "canvas" in kinds:
        written["canvas"] = out / "canvas-grades.csv"
        write_canvas_csv(written["canvas"], rows, maxima, canvas_columns(labs, roster, overrides))
    if "moodle" in kinds:
        for lab in labs:
            written[f"moodle-{lab}"] = out / f"moodle-{lab}.csv"
            write_moodle_csv(written[f"moodle-{lab}"], lab, rows, maxima[lab], roster)
    return written


# ---------------------------------------------------------------- feedback zips


def _name_token(text: str, fallback: str) -> str:
    """A name part for an upload file name: no '_' (the LMSs split on it), no path characters, no digits-only."""
    token = re.sub(r"[_/\\\x00-\x1f:*?\"<>|]+", " ", text).strip()[:60]
    return token if token and not token.replace(" ", "").isdigit() else fallback


def feedback_name(kind: str, identity: Identity, record: dict, lab: str, notebook: str, student: str) -> str | None:
    """The file name of one student's feedback page in the LMS's bulk upload; None if not of that LMS."""
    if kind == "canvas":
        if identity.lms != "canvas" or not identity.user.isdigit():
            return None
        # like Canvas's own: the sortable name squashed to letters and digits ("Lee, Ann" -> "leeann")
        name = re.sub(r"[\W_]+", "", identity.name).lower()[:60]
        name = name if name and not name.isdigit() else "student"
        attachment = f"_{record['attachment']}" if record.get("attachment") else ""
        # Canvas takes the first two all-digit '_' parts as user and attachment: none may follow.
        return f"{name}_{identity.user}{attachment}_{notebook.replace('_', '-')}-feedback.html"
    if kind == "moodle":
        if identity.lms != "moodle" or not identity.user.isdigit():
            return None
        return f"{_name_token(identity.name, 'Student')}_{identity.user}_assignsubmission_file_{notebook}_feedback.html"
    return f"{student}/{lab}/{notebook}.html"


def export_feedback(course: Course, lab: str, kinds: tuple[str, ...] = ("canvas", "moodle", "plain"),
                    out: Path | None = None) -> dict[str, Path]:
    """Write our feedback pages for `lab` and zip them for each LMS; returns kind -> zip."""

    pages = write_feedback(course, lab)
    roster = load_roster(course.root)
    state = lab_states(course, [lab])[lab]
    out = out or course.lms_exports
    out.mkdir(parents=True, exist_ok=True)
    notebook = course.notebook_name(lab)
    written = {}
    for kind in kinds:
        entries = {}
        for page in pages:
            student = page.parent.parent.name
            identity = _identity(student, {lab: state}, roster)
            name = feedback_name(kind, identity, state.get(student, {}), lab, notebook, student)
            if name:
                entries[name] = page
        if not entries:
            continue
        path = out / f"feedback-{lab}-{kind}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, page in sorted(entries.items()):
                archive.write(page, name)
        written[kind] = path
    return written
