"""Who a submission belongs to: the LMS's own user id, never a display name.

A student id is what nbgrader stores and what names the folder `submitted/<id>/`. It is the
LMS's id verbatim (Canvas user id, Moodle participant id, Blackboard user name, Gradescope SID or
e-mail) when that id is a safe folder name (`gradekit.course.safe_text.SAFE_STUDENT_ID`), which every LMS
id in practice is; an id that is not (spaces, `/`, non-ASCII) becomes `id-` + a hash of it, the
same every time. Two students with the same display name have different LMS ids, so they stay two
students; a name in any script is only ever displayed.

A roster (Canvas gradebook export, Moodle grading worksheet, or a plain `id,name,email,...` CSV)
adds names, e-mails, SIS ids and sections, and lists who did not submit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gradekit.course.files import write_text
from gradekit.course.safe_text import is_safe_student_id, terminal_safe

MAX_ROSTER_BYTES = 20 * 2**20
MAX_ROSTER_ROWS = 50_000
MAX_FIELD_CHARS = 1000  # a name or an e-mail longer than this is not one: cut, never trusted as markup
CANVAS_ASSIGNMENT_COLUMN = re.compile(r"^(?P<name>.+?)\s*\((?P<id>\d+)\)$")
MOODLE_PARTICIPANT = re.compile(r"^\D*?(\d+)$")  # "Participant 123456" in any language


def lms_number(text: str) -> float | None:
    """A number as an LMS writes it in a CSV: `45.00`, `45,00` (a decimal comma: Canvas's importer and
    Moodle's `unformat_float` read both), `1,234.5`; None when it is not one."""
    text = text.strip().replace("\u00a0", "").replace(" ", "")
    if not re.fullmatch(r"-?[0-9.,]+", text or "x"):
        return None
    parts = re.split(r"[.,]", text)  # Canvas's decimal_comma_to_period: the last separator is the decimal one
    number = parts[0] if len(parts) == 1 else "".join(parts[:-1]) + "." + parts[-1]
    try:
        return float(number)
    except ValueError:
        return None


def clean_field(text: object) -> str:
    """A value from an LMS file: one line, no control or bidi characters, NFC, bounded."""
    return terminal_safe(unicodedata.normalize("NFC", str(text or "")), MAX_FIELD_CHARS).strip()


def lms_student_id(user: str) -> str | None:
    """The nbgrader student id for an LMS user id; None for an empty id (never a guess)."""
    user = unicodedata.normalize("NFC", user).strip()
    if not user:
        return None
    if is_safe_student_id(user):
        return user
    # Not usable as a folder name: a fixed, collision-resistant id (collect also checks that no
    # two different LMS ids of one run end up with the same student id).
    return "id-" + hashlib.sha256(user.encode()).hexdigest()[:24]


@dataclass
class Identity:
    """A student as the LMS knows them."""

    lms: str  # canvas, moodle, blackboard, gradescope, folder, roster
    user: str  # the LMS's own id, verbatim
    name: str = ""  # display name, for people only
    email: str = ""
    sis_id: str = ""
    login: str = ""
    section: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # e.g. the Moodle worksheet row, for re-export
    # The person's course-wide key where the LMS's id belongs to one assignment: Moodle's participant
    # numbers are per assignment (`assign_user_mapping`), so its worksheets are joined on the e-mail.
    key: str = ""

    @property
    def student(self) -> str | None:
        return lms_student_id(self.key or self.user)

    def merged(self, other: Identity | None) -> Identity:
        """This identity completed by `other` (a roster entry), whose names win: a download's name is a
        file-name fragment (Canvas squashes "Smith, Jane" into "smithjane"), the roster's is the person's."""
        if other is None:
            return self
        values = {key: getattr(other, key) or value for key, value in asdict(self).items()
                  if key not in ("lms", "user", "extra")}
        return Identity(self.lms, self.user, extra={**other.extra, **self.extra}, **values)


@dataclass
class Roster:
    kind: str  # canvas, moodle, plain
    students: dict[str, Identity]  # student id -> identity
    columns: dict[str, str] = field(default_factory=dict)  # Canvas: assignment column header -> assignment id
    header: list[str] = field(default_factory=list)  # Moodle worksheet: its columns, for re-export
    # The LMS's own maximum: Canvas, column header -> its "Points Possible"; Moodle, the worksheet's
    # "Maximum Grade" (one assignment per worksheet) under the key "".
    points: dict[str, float] = field(default_factory=dict)

    def find(self, identity: Identity) -> Identity | None:
        """This roster's entry for a person a download names (by course-wide id, else by the LMS's own id)."""
        known = self.students.get(identity.student or "")
        if known is not None:
            return known
        return next((i for i in self.students.values() if i.lms == identity.lms and i.user == identity.user), None)

    def to_json(self) -> dict:
        return {"kind": self.kind, "columns": self.columns, "header": self.header, "points": self.points,
                "students": {sid: asdict(identity) for sid, identity in self.students.items()}}

    @classmethod
    def from_json(cls, data: dict) -> Roster:
        students = {sid: Identity(**{k: v for k, v in value.items() if k in Identity.__dataclass_fields__})
                    for sid, value in data.get("students", {}).items()}
        return cls(data.get("kind", "plain"), students, data.get("columns", {}), data.get("header", []),
                   {str(k): float(v) for k, v in data.get("points", {}).items()})


def _rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()[:MAX_ROSTER_BYTES + 1]
    if len(raw) > MAX_ROSTER_BYTES:
        raise ValueError(f"{path}: larger than {MAX_ROSTER_BYTES // 2**20} MB, not a roster")
    text = raw.decode("utf-8-sig", errors="replace")  # Excel adds a BOM; a stray byte must not stop us
    rows = []
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        rows.append([value[:MAX_FIELD_CHARS] for value in row[:500]])
        if len(rows) > MAX_ROSTER_ROWS:
            raise ValueError(f"{path}: more than {MAX_ROSTER_ROWS} rows, not a roster")
    return rows


def read_roster(path: Path) -> Roster:
    """Read a Canvas gradebook export, a Moodle grading worksheet, or a plain id,name,... CSV."""
    csv.field_size_limit(MAX_FIELD_CHARS * 10)
    rows = _rows(path)
    if not rows:
        raise ValueError(f"{path}: empty")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]

    def column(row: list[str], *names: str) -> str:
        for name in names:
            if name.lower() in lower:
                index = lower.index(name.lower())
                return clean_field(row[index]) if index < len(row) else ""
        return ""

    students: dict[str, Identity] = {}
    if "student" in lower and "id" in lower:  # Canvas gradebook export
        columns = {h: m["id"] for h in header if (m := CANVAS_ASSIGNMENT_COLUMN.match(h))}
        points: dict[str, float] = {}
        for row in rows[1:]:
            name, user = column(row, "Student"), column(row, "ID")
            if "points possible" in name.lower():  # gradebook_importer.rb `check_for_non_student_row`
                points = {h: value for h, cell in zip(header, row, strict=False)
                          if h in columns and (value := lms_number(cell)) is not None}
            # Canvas adds "Points Possible" (and sometimes a test student) rows without a user id.
            if not user.isdigit() or name.strip().lower() == "points possible":
                continue
            identity = Identity("canvas", user, name, "", column(row, "SIS User ID"),
                                column(row, "SIS Login ID"), column(row, "Section"))
            students[identity.student] = identity
        return Roster("canvas", students, columns, points=points)
    if "identifier" in lower and "full name" in lower:  # Moodle: Assignment > Download grading worksheet
        for row in rows[1:]:
            match = MOODLE_PARTICIPANT.match(column(row, "Identifier"))
            if not match:
                continue
            extra = {h: clean_field(v) for h, v in zip(header, row, strict=False)}
            email = column(row, "Email address")
            identity = Identity("moodle", match[1], column(row, "Full name"), email, column(row, "ID number"),
                                column(row, "Username"), column(row, "Groups"), extra,
                                key=email.lower() if "@" in email else "")
            students[identity.student] = identity
        maxima = {value for identity in students.values()
                  if (value := lms_number(identity.extra.get("Maximum Grade", ""))) is not None}
        return Roster("moodle", students, header=header, points={"": maxima.pop()} if len(maxima) == 1 else {})
    if rows[1:] and re.fullmatch(r"\D*[^\W\d]\D*\s*\d+", clean_field(rows[1][0])) and len(header) >= 6:
        # Moodle names a worksheet's columns in the downloading user's language, and its importer reads them
        # in the importing user's (importgradeslib.php `init`): English both ways is what the kit can fill.
        columns = ", ".join(clean_field(h)[:40] for h in header[:3])
        raise ValueError(f"{path}: a Moodle grading worksheet in another language ({columns}, ...): "
                         "download it with your Moodle language set to English (user menu > Language), and "
                         "upload the kit's worksheet with English too")
    if "id" in lower:  # plain: id,name,email,sis_id,section
        for row in rows[1:]:
            identity = Identity("roster", column(row, "id"), column(row, "name"), column(row, "email"),
                                column(row, "sis_id"), column(row, "login"), column(row, "section"))
            if identity.student:
                students[identity.student] = identity
        return Roster("plain", students)
    raise ValueError(f"{path}: not a Canvas gradebook export (Student, ID, ...), a Moodle grading worksheet "
                     "(Identifier, Full name, ...) or a CSV with an 'id' column")


def roster_path(course_root: Path) -> Path:
    return course_root / "reports" / "roster.json"


def lab_roster_path(course_root: Path, lab: str) -> Path:
    """A Moodle grading worksheet belongs to one assignment (participant numbers, groups, grades are per
    assignment: `assign_user_mapping`): each lab's is kept beside the course-wide roster."""
    return course_root / "reports" / lab / "worksheet.json"


def save_roster(course_root: Path, roster: Roster, lab: str | None = None) -> Path:
    """Keep a roster: a Moodle worksheet as the worksheet of `lab` (it describes that assignment only), any
    other roster (Canvas gradebook export, plain CSV) as the course's."""
    path = lab_roster_path(course_root, lab) if roster.kind == "moodle" and lab else roster_path(course_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(roster.to_json(), indent=1, ensure_ascii=False) + "\n")
    return path


def load_lab_worksheet(course_root: Path, lab: str) -> Roster | None:
    """The Moodle grading worksheet given for `lab` (`collect --roster`), if any."""
    path = lab_roster_path(course_root, lab)
    return Roster.from_json(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


TEAM_COLUMN = "Group"  # the worksheet's column of a team assignment (gradingtable.php, 'submissionteam')


def team_members(worksheet: Roster | None) -> dict[str, list[Identity]] | None:
    """Team name -> its members, from a Moodle worksheet of a team assignment; None for any other roster."""
    if worksheet is None or worksheet.kind != "moodle" or TEAM_COLUMN not in worksheet.header:
        return None
    teams: dict[str, list[Identity]] = {}
    for identity in worksheet.students.values():
        team = identity.extra.get(TEAM_COLUMN, "").strip()
        if team:
            teams.setdefault(team, []).append(identity)
    return teams


def load_roster(course_root: Path, labs: list[str] | tuple[str, ...] = ()) -> Roster | None:
    """The course's roster, completed by the Moodle worksheets of `labs` (their participants, with the
    worksheet's row); None when there is neither."""
    path = roster_path(course_root)
    roster = Roster.from_json(json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None
    for lab in labs:
        worksheet = load_lab_worksheet(course_root, lab)
        if worksheet is None:
            continue
        if roster is None:
            roster = Roster(worksheet.kind, {}, header=worksheet.header, points=dict(worksheet.points))
        for student, identity in worksheet.students.items():
            known = roster.students.get(student)
            if known is None or known.lms == "moodle":
                roster.students[student] = identity
    return roster


def groups_path(course_root: Path, lab: str) -> Path:
    return course_root / "reports" / lab / "groups.json"


def read_canvas_groups(path: Path) -> dict[str, list[Identity]]:
    """A Canvas group set export (People > the group set > Export; doc/api/group_category_csv.md:
    `canvas_user_id`, `group_name`, `canvas_group_id`, ... one row per member): group -> its members."""
    rows = _rows(path)
    if not rows:
        raise ValueError(f"{path}: empty")
    header = [h.strip().lower() for h in rows[0]]
    if "canvas_user_id" not in header or not ({"canvas_group_id", "group_name"} & set(header)):
        raise ValueError(f"{path}: not a Canvas group set export (canvas_user_id, group_name, canvas_group_id, ...)")

    def value(row: list[str], name: str) -> str:
        return clean_field(row[header.index(name)]) if name in header and header.index(name) < len(row) else ""

    groups: dict[str, list[Identity]] = {}
    for row in rows[1:]:
        user, group = value(row, "canvas_user_id"), value(row, "canvas_group_id") or value(row, "group_name")
        if user.isdigit() and group:
            member = Identity("canvas", user, value(row, "name"), login=value(row, "login_id"),
                              sis_id=value(row, "user_id"))
            groups.setdefault(group, []).append(member)
    return groups


def save_groups(course_root: Path, lab: str, groups: dict[str, list[Identity]]) -> Path:
    path = groups_path(course_root, lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {group: [asdict(member) for member in members] for group, members in groups.items()}
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


def canvas_group_of(course_root: Path, lab: str) -> dict[str, list[Identity]]:
    """Canvas user id -> every member of their group, for the lab's group assignment (`collect --groups`)."""
    path = groups_path(course_root, lab)
    if not path.is_file():
        return {}
    fields_ = Identity.__dataclass_fields__
    groups = {group: [Identity(**{k: v for k, v in member.items() if k in fields_}) for member in members]
              for group, members in json.loads(path.read_text(encoding="utf-8")).items()}
    return {member.user: members for members in groups.values() for member in members}

