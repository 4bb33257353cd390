"""The LMSs' importers, re-implemented from their source, to read the files the kit writes as they do.

Canvas: `lib/gradebook_importer.rb` (`header?`, `row_has_student_headers?`, `update_column_count`,
`strip_non_assignment_columns`, `parse_assignments` with `Assignment.title_and_id`, `check_for_non_student_row`,
`process_student`, the `decimal_comma_to_period` converter). Moodle: `mod/assign/feedback/offline/
importgradeslib.php` (`init`, `next`) and `locallib.php` (`process_import_grades`). Only the rules that
decide what a row does are kept; what each would do is returned, with every row the LMS skips and why.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dateutil import parser as date_parser

# ---------------------------------------------------------------- Canvas

NON_ASSIGNMENT = re.compile("|".join(["Current Score", "Current Points", "Current Grade", "Final Score",
                                      "Final Points", "Final Grade", "Override Score", "Override Grade",
                                      "Override Status"]))
TITLE_AND_ID = re.compile(r"\A(.*)\s\((\d+)\)\Z")  # Assignment.title_and_id


def canvas_number(field_value: str) -> str:
    """The `decimal_comma_to_period` converter."""
    if re.fullmatch(r"-?[0-9.,]+%?", field_value):
        parts = re.split(r"[,.]", field_value)
        last = parts.pop()
        return last if not parts else "".join(parts) + "." + last
    return field_value


@dataclass
class CanvasImport:
    grades: dict[tuple[str, str], float] = field(default_factory=dict)  # (user id, assignment id) -> points
    new_assignments: list[str] = field(default_factory=list)  # headers Canvas would create an assignment for
    unknown_students: list[str] = field(default_factory=list)
    above_points_possible: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def canvas_import(text: str, assignments: dict[str, tuple[str, float]], users: set[str]) -> CanvasImport:
    """`assignments`: Canvas assignment id -> (title, points possible) as the course has them."""
    result = CanvasImport()
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    if not (len(header) > 3 and "Student" in header[0] and "ID" in header[1]):
        result.problems.append("Invalid header row")
        return result
    student_columns = 3
    if re.search(r"SIS\s+Login\s+ID", header[2]):
        student_columns += 1
    elif re.search(r"SIS\s+User\s+ID", header[2]) and re.search(r"SIS\s+Login\s+ID", header[3]):
        student_columns += 2
    if "Section" not in header[student_columns - 1]:
        result.problems.append("Invalid header row (the last student column is not Section)")
        return result
    columns = [(index, name) for index, name in enumerate(header) if index >= student_columns
               and not NON_ASSIGNMENT.search(name)]
    targets: dict[int, str] = {}
    for index, name in columns:
        match = TITLE_AND_ID.match(name)
        assignment = match[2] if match and match[2] in assignments else None
        assignment = assignment or next((a for a, (title, _) in assignments.items() if title == name), None)
        if assignment is None:
            result.new_assignments.append(name)
        else:
            targets[index] = assignment
    for row in rows[1:]:
        if row and "Points Possible" in row[0]:
            continue  # process_pp: not applied to an existing assignment
        if all(re.fullmatch(r"\s*(Muted|Manual Posting.*)?\s*", cell or "", re.IGNORECASE) for cell in row):
            continue
        user = row[1].strip()
        if user not in users:
            result.unknown_students.append(user)
            continue
        for index, assignment in targets.items():
            value = canvas_number((row[index] if index < len(row) else "").strip())
            if value in ("", "-"):
                continue
            points = float(value)
            result.grades[(user, assignment)] = points
            if points > assignments[assignment][1]:
                result.above_points_possible.append(f"{user}: {points} > {assignments[assignment][1]}")
    return result


# ---------------------------------------------------------------- Moodle

HIDDEN_USER = "Participant "  # get_string('hiddenuser', 'assign')


@dataclass
class GradeRecord:
    """Moodle's assign_grades row for a participant, and the feedback comment it holds."""

    grade: float | None
    timemodified: datetime
    comment: str = ""


@dataclass
class MoodleImport:
    grades: dict[str, float] = field(default_factory=dict)  # participant -> grade imported
    comments: dict[str, str] = field(default_factory=dict)  # participant -> comment imported
    skipped: dict[str, str] = field(default_factory=dict)  # participant -> why Moodle skips the grade
    problems: list[str] = field(default_factory=list)


def php_strtotime(text: str) -> float | None:
    """strtotime on what a worksheet holds: Moodle's own dates and plain date-times; False (None) else."""
    text = text.strip()
    if not text or text == "-":
        return None
    try:
        moment = date_parser.parse(text)
    except (ValueError, OverflowError):
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def unformat_float(text: str) -> float | None:
    text = text.strip().replace(",", ".")
    try:
        return float(text) if text else None
    except ValueError:
        return None


def moodle_import(text: str, maximum: float, records: dict[str, GradeRecord | None],
                  comment_column: str = "Feedback comments") -> MoodleImport:
    """`records`: participant number -> the grade record Moodle has (None: none yet), for every participant."""
    result = MoodleImport()
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    try:
        grade_index, id_index = header.index("Grade"), header.index("Identifier")
        modified_index = header.index("Last modified (grade)")
    except ValueError:
        result.problems.append("invalidgradeimport: Identifier, Grade or Last modified (grade) missing")
        return result
    comment_index = header.index(comment_column) if comment_column in header else 0
    for row in rows[1:]:
        participant = row[id_index][len(HIDDEN_USER):]
        if participant not in records:
            continue  # get_user_id_for_uniqueid / validusers: not a participant of this assignment
        record = records[participant]
        modified = php_strtotime(row[modified_index]) or 0
        grade = unformat_float(row[grade_index])
        stale = record is not None and record.timemodified.timestamp() > modified + 60
        if record is not None and record.grade == grade:
            result.skipped[participant] = "not modified"
        elif grade is None or grade < 0:
            result.skipped[participant] = "no grade"
        elif stale:
            result.skipped[participant] = "stale: Moodle's grade is newer than Last modified (grade)"
        elif grade > maximum:
            result.skipped[participant] = f"out of range: {grade} > {maximum}"
        else:
            result.grades[participant] = grade
        if not stale and comment_index:  # `!empty($details['index'])`: a comment in column 0 is never read
            new = row[comment_index]
            if new != (record.comment if record else ""):
                result.comments[participant] = new
    return result


# ---------------------------------------------------------------- feedback zips


def moodle_feedback_import(names: list[str], participants: set[str]) -> dict[str, list[str]]:
    """`mod/assign/feedback/file/importziplib.php` `is_valid_filename_for_import`: each path part split on
    '_' (at most 5 pieces), the first with at least 4 pieces and a numeric second piece that is a
    participant's unique id (`get_uniqueid_for_user`: a person, never a group) names the participant, and
    pieces 3-4 the plugin. Returns participant -> the file names Moodle attaches to their grade; files it
    ignores under ""."""
    placed: dict[str, list[str]] = {}
    for name in names:
        if name.endswith("/") or name.rsplit("/", 1)[-1].startswith((".", "~")):
            continue
        parts = name.split("/")
        owner = ""
        while parts:
            info = parts.pop(0).split("_", 4)
            if len(info) < 4 or not info[1].isdigit() or str(int(info[1])) not in participants:
                continue
            if (info[2], info[3]) != ("assignsubmission", "file"):
                continue
            owner = str(int(info[1]))
            parts.insert(0, info[4] if len(info) > 4 else "")
            placed.setdefault(owner, []).append("/".join(parts))
            break
        if not owner:
            placed.setdefault("", []).append(name)
    return placed


def canvas_feedback_import(names: list[str], attachments: dict[str, set[str]]) -> dict[str, list[str]]:
    """`app/models/assignment.rb` `infer_comment_context_from_filename`: the first two all-digit '_' pieces of
    the base name are the user and the attachment, which must be one of that user's submission's
    attachments (`attachments`: user id -> attachment ids). Returns user -> file names; ignored under ""."""
    placed: dict[str, list[str]] = {}
    for name in names:
        base = name.rsplit("/", 1)[-1]
        pieces = base.split("_")
        numbers = [piece for piece in pieces if re.fullmatch(r"\d+", piece)][:2]
        user, attachment = (numbers + ["", ""])[:2]
        if pieces[-1].startswith("link") or base.startswith("._"):
            attachment = ""
        if user and attachment and attachment in attachments.get(user, set()):
            placed.setdefault(user, []).append(name)
        else:
            placed.setdefault("", []).append(name)
    return placed
