"""Grades and feedback back to the LMS, in files it imports as they are.

* Canvas: a gradebook import CSV (`Student, ID, SIS User ID, SIS Login ID, Section`, one column per
  lab, a `Points Possible` row), matched by Canvas's user id. A lab's column is `--column`, else the
  roster's column of the lab's Canvas assignment id (course.toml `[lms.canvas]`), else the one roster
  column named like the lab; a lab with none is left out (Canvas would create a new assignment).
* Moodle: per lab, the assignment's grading worksheet (`Identifier` = `Participant <id>`, `Grade`,
  `Feedback comments`), imported with "Upload grading worksheet"; with the lab's worksheet given to
  `collect --roster`, its rows come back unchanged except for the grade, the comment (appended to the
  one Moodle has) and an empty "Last modified (grade)".
* Grades are at each LMS's scale (`Scale`): nbgrader's points scaled to the LMS assignment's maximum.
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
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gradekit.course.collected import load_state
from gradekit.course.directory import Course
from gradekit.course.exits import UsageError
from gradekit.course.files import atomic_open, write_text
from gradekit.course.ledger import outdated
from gradekit.course.roster import CANVAS_ASSIGNMENT_COLUMN, Identity, Roster, load_lab_worksheet, load_roster
from gradekit.course.safe_text import csv_safe
from gradekit.course.settings import canvas_assignments, lms_points
from gradekit.course.status import Status, StudentStatus, read_status
from gradekit.delivery.feedback import write_feedback
from gradekit.scoring.ungradable import load_ungradable

MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                 "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
CANVAS_FIXED = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


@dataclass
class LabResult:
    score: float | None  # None: blank in the CSV
    status: str  # graded, not graded yet, outdated, invalid, timed out, crashed, missing
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
                                record.get("sis_id", ""), record.get("login", ""), record.get("section", ""),
                                key=record.get("key", ""))
            return identity.merged(roster.students.get(student) if roster else None)
    if roster and student in roster.students:
        return roster.students[student]
    return Identity("nbgrader", student)


def results(course: Course, labs: list[str], missing: str = "zero",
            roster: Roster | None = None) -> tuple[list[StudentResult], dict[str, float]]:
    """Every student of the course, per lab: score, status and reason; and each lab's maximum."""
    from nbgrader.api import MissingEntry

    roster = roster or load_roster(course.root, labs)
    states = lab_states(course, labs)
    statuses = {lab: _status_entries(course, lab) for lab in labs}
    ungradable = {lab: load_ungradable(course, lab) for lab in labs}
    stale = {lab: {student: f"outdated: {why}; not graded yet (gradekit grade {lab} --outdated)"
                   for student, why in outdated(course, lab).items()} for lab in labs}
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
                                        ungradable[lab].get(student), missing, stale[lab].get(student, ""))
        rows.append(row)
    return rows, maxima


def _lab_result(submission: tuple | None, status: StudentStatus | None, ungradable: dict | None,
                missing: str, outdated_because: str = "") -> LabResult:
    absent = 0.0 if missing == "zero" else None
    # The ledger first: a grade of something else than what is submitted now is never passed off as current.
    if outdated_because:
        return LabResult(None, "outdated", outdated_because)
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


@dataclass(frozen=True)
class Scale:
    """A lab's points in the LMS: nbgrader's points scaled to the LMS assignment's maximum, to 2 decimals.

    Canvas posts an imported cell as points and ignores the file's "Points Possible" row for an existing
    assignment (`gradebook_importer.rb` `process_pp`); Moodle skips, silently, a grade above the
    assignment's maximum and never reads "Maximum Grade" (`feedback/offline/locallib.php`
    `process_import_grades`): nbgrader's 40/45 must arrive as 8.89 on a 10-point assignment."""

    lab: str
    nbgrader_max: float
    lms_max: float | None  # None: not known; points then go as nbgrader's, and the rule says so
    source: str

    def convert(self, value: float | None) -> float | None:
        if value is None or self.lms_max is None or not self.nbgrader_max:
            return value
        return round(value * self.lms_max / self.nbgrader_max, 2)

    @property
    def maximum(self) -> float:
        return self.lms_max if self.lms_max is not None else self.nbgrader_max

    @property
    def rule(self) -> str:
        if self.lms_max is None:
            return (f"{self.lab}: nbgrader's points as they are, out of {points(self.nbgrader_max)} ({self.source}: "
                    f"the LMS assignment must be out of {points(self.nbgrader_max)}, or set [lms.points] "
                    f"{self.lab} in course.toml)")
        example = self.nbgrader_max - 5 if self.nbgrader_max > 5 else self.nbgrader_max / 2
        return (f"{self.lab}: points out of {points(self.nbgrader_max)} -> out of {points(self.lms_max)} "
                f"(e.g. {points(example)}/{points(self.nbgrader_max)} -> {points(self.convert(example))}/"
                f"{points(self.lms_max)}; {self.source})")


def lab_scales(course: Course, labs: list[str], maxima: dict[str, float], kind: str, roster: Roster | None,
               columns: dict[str, str | None] | None = None) -> dict[str, Scale]:
    """Each lab's scale for one LMS: course.toml's `[lms.points]`, else the LMS's own file (the Canvas
    export's Points Possible of the lab's column; the lab's Moodle worksheet's Maximum Grade)."""
    configured = lms_points(course.root)
    scales = {}
    for lab in labs:
        maximum, source = configured.get(lab), "course.toml [lms.points]"
        if maximum is None and kind == "canvas" and roster and roster.kind == "canvas":
            column = (columns or {}).get(lab)
            maximum, source = roster.points.get(column or ""), f"Points Possible of {column!r} in the Canvas export"
        if maximum is None and kind == "moodle":
            worksheet = load_lab_worksheet(course.root, lab)
            maximum, source = (worksheet.points.get("") if worksheet else None), "Maximum Grade of the lab's worksheet"
        scales[lab] = Scale(lab, maxima.get(lab, 0.0), maximum, source if maximum is not None else
                            "no LMS maximum known")
    return scales


def canvas_columns(labs: list[str], roster: Roster | None, overrides: dict[str, str] | None = None,
                   assignment_ids: dict[str, str] | None = None) -> dict[str, str | None]:
    """lab -> Canvas column header, or None when no column is known (a header Canvas cannot match would make
    its importer create a new assignment: `parse_assignments`). An override, else the roster's column of
    the lab's Canvas assignment id (course.toml `[lms.canvas]`: Canvas matches `Title (id)` by the id,
    `Assignment.title_and_id`), else the one roster column named like the lab."""
    def key(text: str) -> str:
        return re.sub(r"[\s_\-]+", "", text).lower()

    columns: dict[str, str | None] = {}
    known = roster.columns if roster else {}
    for lab in labs:
        if (overrides or {}).get(lab):
            columns[lab] = overrides[lab]
            continue
        if (assignment_ids or {}).get(lab):
            by_id = [h for h, assignment in known.items() if assignment == assignment_ids[lab]]
            columns[lab] = by_id[0] if by_id else f"{lab} ({assignment_ids[lab]})"
            continue
        match = [h for h in known if key(CANVAS_ASSIGNMENT_COLUMN.match(h)["name"]) == key(lab)]
        columns[lab] = match[0] if len(match) == 1 else None
    return columns


def write_canvas_csv(path: Path, rows: list[StudentResult], scales: dict[str, Scale],
                     columns: dict[str, str], exclude: set[str] = frozenset()) -> list[str]:
    """Canvas gradebook import (the labs of `columns` only); returns the students left out (not Canvas users,
    or in `exclude`)."""
    labs = list(columns)
    left_out = []
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CANVAS_FIXED, *(columns[lab] for lab in labs)])
        writer.writerow(["Points Possible", "", "", "", "", *(points(scales[lab].maximum) for lab in labs)])
        for row in rows:
            identity = row.identity
            if identity.lms != "canvas" or not identity.user.isdigit() or row.student in exclude:
                left_out.append(row.student)
                continue
            writer.writerow([csv_safe(identity.name or identity.user), identity.user, csv_safe(identity.sis_id),
                             csv_safe(identity.login), csv_safe(identity.section),
                             *(points(scales[lab].convert(row.labs[lab].score)) for lab in labs)])
    return left_out


def merged_comment(existing: str, ours: str) -> str:
    """The feedback comment to import: the LMS's own comment is never lost (Moodle replaces a comment that
    differs); ours follows it, once."""
    existing, ours = existing.strip(), ours.strip()
    if not ours or ours in existing:
        return existing
    return f"{existing}\n{ours}" if existing else ours


def write_moodle_csv(path: Path, lab: str, rows: list[StudentResult], scale: Scale, worksheet: Roster | None,
                     exported_at: str, collected: dict[str, dict] | None = None) -> list[str]:
    """Moodle grading worksheet for one lab: the lab's own worksheet (`collect --roster`) with Grade and
    Feedback comments filled, "Maximum Grade" as Moodle wrote it, and a "Last modified (grade)" where it
    was empty (Moodle skips a row whose grade record is newer than that time: `process_import_grades`).
    Returns the students left out (not Moodle participants)."""
    header = worksheet.header if worksheet and worksheet.header else MOODLE_HEADER
    left_out = []
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            identity = row.identity
            if identity.lms != "moodle" or not identity.user.isdigit():
                left_out.append(row.student)
                continue
            result = row.labs[lab]
            sheet = worksheet.students.get(row.student) if worksheet else None
            values = dict(sheet.extra if sheet else identity.extra or {})
            # The participant number of this lab's assignment (numbers are per assignment).
            record = (collected or {}).get(row.student) or {}
            participant = record["user"] if record.get("lms") == "moodle" else identity.user
            values.setdefault("Identifier", f"Participant {participant}")
            values.setdefault("Full name", identity.name)
            values.setdefault("Email address", identity.email)
            values["Grade"] = points(scale.convert(result.score))
            if not values.get("Maximum Grade", "").strip():
                values["Maximum Grade"] = points(scale.maximum)
            if values.get("Last modified (grade)", "").strip() in ("", "-"):
                values["Last modified (grade)"] = exported_at
            values["Feedback comments"] = merged_comment(values.get("Feedback comments", ""), result.reason)
            writer.writerow([csv_safe(values.get(column, "")) for column in header])
    return left_out


def write_plain_csv(path: Path, rows: list[StudentResult], maxima: dict[str, float]) -> None:
    labs = list(maxima)
    with atomic_open(path, newline="") as handle:
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


# ---------------------------------------------------------------- what changed since the last export

EXPORTED_RECORD = "exported-grades.json"  # beside the grade files: per lab, the grades its last export held
LISTED = 20  # grades going down listed one per line; more are counted


@dataclass(frozen=True)
class GradeChange:
    """One student's grade of one lab (nbgrader's points, penalty subtracted) in the last export and in this
    one; None is a blank cell (not exported before, or blank now)."""

    lab: str
    student: str
    before: float | None
    after: float | None

    @property
    def lowers(self) -> bool:
        # A blank where a grade went out may clear that grade in the LMS: it counts as going down.
        return self.before is not None and (self.after is None or self.after < self.before)

    def __str__(self) -> str:
        return f"{self.lab}: {self.student} {points(self.before) or 'blank'} \u2192 {points(self.after) or 'blank'}"


@dataclass
class ExportChanges:
    """The grades that differ from the last export's, in the labs exported before (`compared`); the labs
    exported for the first time have nothing to compare with."""

    changes: list[GradeChange] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    first_export: list[str] = field(default_factory=list)

    def lowered(self) -> list[GradeChange]:
        return [change for change in self.changes if change.lowers]

    def lowered_lines(self, limit: int = LISTED) -> list[str]:
        """The grades that go down, one line each, at most `limit` of them, then how many more."""
        lowered = self.lowered()
        more = [f"... and {len(lowered) - limit} more"] if len(lowered) > limit else []
        return [str(change) for change in lowered[:limit]] + more

    def summary(self) -> str:
        parts = []
        if self.compared:
            down = len(self.lowered())
            parts.append(f"{len(self.changes)} grade(s) changed since the last export: "
                         f"{len(self.changes) - down} up, {down} down")
        if self.first_export:
            parts.append(f"first export of {', '.join(self.first_export)}: nothing to compare with")
        return "; ".join(parts)


class GradesWouldDrop(Exception):
    """The export would lower grades the LMS already has; nothing was written (`export_grades(accept=True)`
    writes them)."""

    def __init__(self, changes: ExportChanges) -> None:
        super().__init__(f"{len(changes.lowered())} grade(s) would go down since the last export")
        self.changes = changes


def load_exported(folder: Path) -> dict[str, dict]:
    """lab -> {"exported_at": ..., "grades": {student: points or None}} of the last export into `folder`."""
    path = folder / EXPORTED_RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        record = None
        problem = str(error)
    else:
        problem = "not lab -> {grades: {student: points}}"
    if not _well_formed(record):
        # Never export as if nothing had gone out before: that would lower grades without asking.
        raise UsageError(f"{path} cannot be read ({problem}): the grades of the last export are unknown; move it "
                         "away to export without comparing")
    return record


def _well_formed(record: object) -> bool:
    def is_points(value: object) -> bool:
        return value is None or (isinstance(value, int | float) and not isinstance(value, bool))

    return isinstance(record, dict) and all(
        isinstance(entry, dict) and isinstance(entry.get("grades"), dict)
        and all(is_points(value) for value in entry["grades"].values()) for entry in record.values())


def _exported_points(value: float | None) -> float | None:
    return None if value is None else round(value, 2)  # as the grade files write them (`points`)


def export_changes(record: dict[str, dict], rows: list[StudentResult], labs: list[str]) -> ExportChanges:
    """What this export changes from the last one (`load_exported`), lab by lab."""
    found = ExportChanges()
    for lab in labs:
        if lab not in record:
            found.first_export.append(lab)
            continue
        found.compared.append(lab)
        before = record[lab]["grades"]
        for row in rows:
            old, new = before.get(row.student), _exported_points(row.labs[lab].score)
            if old != new:
                found.changes.append(GradeChange(lab, row.student, old, new))
    return found


def record_export(folder: Path, record: dict[str, dict], rows: list[StudentResult], labs: list[str]) -> Path:
    """Keep what this export held per lab (other labs' last exports stay), whole or not at all."""
    when = datetime.now(UTC).isoformat(timespec="seconds")
    updated = dict(record)
    for lab in labs:
        updated[lab] = {"exported_at": when,
                        "grades": {row.student: _exported_points(row.labs[lab].score) for row in rows}}
    path = folder / EXPORTED_RECORD
    write_text(path, json.dumps(updated, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return path


def export_grades(course: Course, labs: list[str], missing: str = "zero",
                  overrides: dict[str, str] | None = None, out: Path | None = None,
                  notes: list[str] | None = None, dry_run: bool = False,
                  include_unrostered: bool = False, accept: bool = False) -> dict[str, Path]:
    """Write reports/lms/{grades.csv, canvas-grades.csv, moodle-<lab>.csv}; returns what was written and adds
    to `notes` the preview (`preview`), each scale rule, every lab left out and how many grades changed since
    the last export (recorded in `EXPORTED_RECORD` beside the files). Nothing is written when a grade would be
    above an LMS maximum, nor with `dry_run`, nor, unless `accept`, when a grade would go down since the last
    export (`GradesWouldDrop`)."""
    notes = notes if notes is not None else []
    roster = load_roster(course.root, labs)
    rows, maxima = results(course, labs, missing, roster)
    kinds = {row.identity.lms for row in rows} | ({roster.kind} if roster else set())
    plans: dict[str, tuple[dict[str, Scale], dict]] = {}
    if "canvas" in kinds:
        columns = canvas_columns(labs, roster, overrides, canvas_assignments(course.root))
        for lab in labs:
            if columns[lab] is None:
                notes.append(f"canvas: {lab} left out: no column of the Canvas export is this lab's (give the "
                             f"export as --roster, set [lms.canvas] {lab} = <assignment id> in course.toml, or "
                             f"--column {lab}=\"Title (id)\"); Canvas would create a new assignment")
        plans["canvas"] = (lab_scales(course, labs, maxima, "canvas", roster, columns),
                           {lab: column for lab, column in columns.items() if column is not None})
    if "moodle" in kinds:  # a worksheet per lab that came from Moodle (a worksheet given, or Moodle files)
        moodle_labs = [lab for lab in labs if load_lab_worksheet(course.root, lab) is not None
                       or any(record.get("lms") == "moodle" for record in load_state(course, lab).values())]
        plans["moodle"] = (lab_scales(course, moodle_labs, maxima, "moodle", roster), {})
    # A Canvas user the course's Canvas export does not list: a file from another course, or a test student.
    strangers = {row.student for row in rows if roster is not None and roster.kind == "canvas"
                 and row.identity.lms == "canvas" and row.identity.user.isdigit() and roster.find(row.identity) is None}
    notes += preview([row for row in rows if include_unrostered or row.student not in strangers], labs, plans)
    if strangers and "canvas" in plans:
        notes.append(f"canvas: {len(strangers)} student(s) not on the Canvas export "
                     f"{'exported anyway' if include_unrostered else 'left out (--include-unrostered to export them)'}"
                     f": {', '.join(sorted(strangers)[:20])}")
    too_high = [f"{kind} {lab}: {row.student} {points(scale.convert(row.labs[lab].score))} > {points(scale.maximum)}"
                for kind, (scales, _) in plans.items() for lab, scale in scales.items() for row in rows
                if (value := scale.convert(row.labs[lab].score)) is not None and value > scale.maximum + 0.005]
    if too_high:
        raise UsageError("grades above the LMS maximum (the LMS would skip or cap them): " + "; ".join(too_high[:10]))
    out = out or course.lms_exports
    record = load_exported(out)
    changes = export_changes(record, rows, labs)
    if dry_run:
        notes += [f"{kind}: {scale.rule}" for kind, (scales, _) in plans.items() for scale in scales.values()]
        notes += [changes.summary(), *changes.lowered_lines()]
        return {}
    if changes.lowered() and not accept:
        raise GradesWouldDrop(changes)
    out.mkdir(parents=True, exist_ok=True)
    written = {"plain": out / "grades.csv"}
    write_plain_csv(written["plain"], rows, maxima)
    if "canvas" in plans:
        scales, columns = plans["canvas"]
        notes += [f"canvas: {scales[lab].rule}" for lab in columns]
        if columns:
            written["canvas"] = out / "canvas-grades.csv"
            write_canvas_csv(written["canvas"], rows, scales, columns, set() if include_unrostered else strangers)
    if "moodle" in plans:
        scales, _ = plans["moodle"]
        exported_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")  # PHP's strtotime reads it
        for lab in scales:
            notes.append(f"moodle: {scales[lab].rule}")
            written[f"moodle-{lab}"] = out / f"moodle-{lab}.csv"
            write_moodle_csv(written[f"moodle-{lab}"], lab, rows, scales[lab], load_lab_worksheet(course.root, lab),
                             exported_at, load_state(course, lab))
    record_export(out, record, rows, labs)  # last: a failed export is not the last export
    notes.append(changes.summary())
    return written


def preview(rows: list[StudentResult], labs: list[str], plans: dict[str, tuple[dict[str, Scale], dict]]) -> list[str]:
    """One line per LMS and lab: what the file holds, and who the LMS will not take from it."""
    lines = []
    for kind in plans:
        members = [row for row in rows if row.identity.lms == kind and row.identity.user.isdigit()]
        others = len(rows) - len(members)
        for lab in (plans[kind][1] or plans[kind][0]) if kind == "canvas" else plans[kind][0]:
            results_ = [row.labs[lab] for row in members]
            counts = {
                "graded": sum(r.status == "graded" and "not graded yet" not in r.reason for r in results_),
                "pending hand grading": sum("written answers not graded yet" in r.reason for r in results_),
                "not graded yet": sum(r.status == "not graded yet" for r in results_),
                "outdated (blank: regrade first)": sum(r.status == "outdated" for r in results_),
                "0 (missing or not gradable)": sum(r.score == 0.0 and r.status in ("missing", "invalid")
                                                   for r in results_),
                "blank": sum(r.score is None and r.status != "outdated" for r in results_),
                "timed out or crashed": sum(r.status in ("timed out", "crashed") for r in results_),
            }
            summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
            lines.append(f"{kind} {lab}: {len(members)} students: {summary or 'none'}"
                         + (f"; {others} not {kind} users (not in this file)" if others else ""))
    return lines


# ---------------------------------------------------------------- feedback zips


def _name_token(text: str, fallback: str) -> str:
    """A name part for an upload file name: no '_' (the LMSs split on it), no path characters, no digits-only."""
    token = re.sub(r"[_/\\\x00-\x1f:*?\"<>|]+", " ", text).strip()[:60]
    return token if token and not token.replace(" ", "").isdigit() else fallback


def feedback_name(kind: str, identity: Identity, record: dict, lab: str, notebook: str, student: str) -> str | None:
    """The file name of one student's feedback page in the LMS's bulk upload; None if not of that LMS."""
    if kind == "canvas":
        if identity.lms != "canvas" or not identity.user.isdigit() or not record.get("attachment"):
            return None  # Canvas attaches a file only to a submission's attachment: no upload, nowhere to attach
        # like Canvas's own: the sortable name squashed to letters and digits ("Lee, Ann" -> "leeann")
        name = re.sub(r"[\W_]+", "", identity.name).lower()[:60]
        name = name if name and not name.isdigit() else "student"
        attachment = f"_{record['attachment']}"
        # Canvas takes the first two all-digit '_' parts as user and attachment: none may follow.
        # A notebook: Canvas shows the file under the name the student submitted (a .ipynb), and Colab opens it.
        return f"{name}_{identity.user}{attachment}_{notebook.replace('_', '-')}-feedback.ipynb"
    if kind == "moodle":
        if identity.lms != "moodle" or not identity.user.isdigit():
            return None
        return f"{_name_token(identity.name, 'Student')}_{identity.user}_assignsubmission_file_{notebook}_feedback.html"
    return f"{student}/{lab}/{notebook}.html"


def export_feedback(course: Course, lab: str, kinds: tuple[str, ...] = ("canvas", "moodle", "plain"),
                    out: Path | None = None) -> dict[str, Path]:
    """Write our feedback pages for `lab` and zip them for each LMS; returns kind -> zip."""

    pages = write_feedback(course, lab)
    roster = load_roster(course.root, [lab])
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
                notebook_page = page.with_suffix(".ipynb")
                entries[name] = notebook_page if name.endswith(".ipynb") and notebook_page.is_file() else page
        if not entries:
            continue
        path = out / f"feedback-{lab}-{kind}.zip"
        with atomic_open(path, "wb") as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, page in sorted(entries.items()):
                archive.write(page, name)
        written[kind] = path
    return written
