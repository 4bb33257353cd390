"""`collect`: place an LMS bulk download (zip or folder) into submitted/<student>/<lab>/<notebook>.ipynb.

Students are who the LMS says they are (`gradekit.course.roster`): the folder is the LMS's user id,
so two students with one name stay two, and a name in any script works. Layouts
(`gradekit.intake.layouts`): Canvas (`LATE`, re-uploads `-1`, Unicode names), Moodle (folders and flat
names), Blackboard (attempt files and receipts), Gradescope exports (`submission_metadata.yml`) and
plain `<id>/[<lab>/]<file>` folders, at any depth; notebooks saved as `.ipynb.json` too.

Choosing among a student's notebooks (the rule, reported for every choice): an edited notebook
beats an unchanged copy of the release (a stub); then the notebook named for the lab (after
`Copy of `, ` (2)`, `-1` are removed) beats other names; then the latest upload (LMS time, then
Canvas's upload number, then re-upload number `-2` > `-1`, then the file's own time).

Submission times: the LMS's time (Blackboard, Gradescope, the Moodle worksheet) goes into nbgrader's
`timestamp.txt`, so nbgrader's late penalties apply; Canvas only says `LATE`, which is recorded as
one minute after the due date (`c.LateWork.duedates`, `gradekit.scoring.late`).

Nothing goes stale or is lost: a newer submission replaces the collected one (the old file is
kept under reports/<lab>/collect-history/), an older one does not (unless `--replace`); every run is
appended to reports/<lab>/collect-log.csv; reports/<lab>/collect.csv is the last run.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from gradekit.course.backup import backup
from gradekit.course.cells import answer_sources, is_release_stub
from gradekit.course.collected import load_state, state_path
from gradekit.course.directory import Course
from gradekit.course.exits import UsageError, deferred_interrupts
from gradekit.course.files import atomic_open, write_bytes, write_text
from gradekit.course.ledger import ungraded
from gradekit.course.lock import course_lock
from gradekit.course.roster import (
    Identity,
    Roster,
    canvas_group_of,
    load_lab_worksheet,
    load_roster,
    read_canvas_groups,
    read_roster,
    save_groups,
    save_roster,
    team_members,
)
from gradekit.course.safe_text import csv_safe, terminal_safe
from gradekit.intake.layouts import (
    BLACKBOARD,
    Context,
    blackboard_receipt,
    gradescope_metadata,
    identify,
    is_notebook,
    normalise_stem,
    parse_time,
    resubmission_number,
    team_key,
)
from gradekit.intake.students import register_students
from gradekit.scoring.late import apply_dates, due_date

MAX_ENTRY_BYTES = 100 * 2**20  # same cap as gradekit.staging.repair: a bigger notebook is rejected there anyway
MAX_TOTAL_BYTES = 4 * 2**30
MAX_ENTRIES = 20000
MAX_COMPRESSION_RATIO = 200  # beyond this an entry is treated as a zip bomb
JUNK = re.compile(r"(^|/)(__MACOSX|\.ipynb_checkpoints|\.DS_Store|Thumbs\.db|desktop\.ini)(/|$)|(^|/)\._")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"  # what nbgrader itself writes into timestamp.txt
LATE_MARGIN = timedelta(minutes=1)

__all__ = ["collect", "normalise_stem", "Found"]


@dataclass
class Found:
    """One file of the download (one per student for a Gradescope group submission)."""

    source: str  # its path inside the zip or folder
    data: bytes
    modified: datetime | None
    identity: Identity | None = None
    layout: str = ""
    notebook_stem: str | None = None
    late: bool | None = None
    submitted_at: datetime | None = None
    attachment: int = 0
    stub: bool = False
    action: str = ""
    target: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def student(self) -> str | None:
        return self.identity.student if self.identity else None

    def order(self) -> tuple:
        """Later uploads sort higher."""
        moment = self.submitted_at.timestamp() if self.submitted_at else float("-inf")
        return (moment, self.attachment, resubmission_number(self.source),
                self.modified or datetime.min)


# ---------------------------------------------------------------- reading the download safely


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not re.match(r"^[a-zA-Z]:", name)


def _member_name(info: zipfile.ZipInfo) -> str:
    """The entry's name; zips without the UTF-8 flag (some LMSs) still carry UTF-8 names."""
    name = info.filename
    if not info.flag_bits & 0x800:
        try:
            name = name.encode("cp437").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
    return unicodedata.normalize("NFC", name.replace("\\", "/"))


ZIP_LOCAL_HEADER = b"PK\x03\x04"


def read_download(path: Path, skipped: list[tuple[str, str]]) -> list[Found]:
    """Every file of the download, read whole before anything is written: a damaged download is refused
    (UsageError), never half placed."""
    if path.is_dir():
        return read_folder(path, skipped)
    if not path.is_file():
        raise UsageError(f"{path}: no such file or folder")
    size = path.stat().st_size
    if size == 0:
        raise UsageError(f"{path}: empty file (0 bytes): download the submissions again")
    if zipfile.is_zipfile(path):
        return read_zip(path, skipped)
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == ZIP_LOCAL_HEADER:  # a zip's first entry, but no central directory at the end: cut short
        raise UsageError(f"{path}: truncated zip ({size} bytes, its end is missing): the download was "
                         "interrupted; download the submissions again")
    raise UsageError(f"{path}: not a zip file nor a folder: give the LMS's bulk download (.zip) or a folder")


def read_zip(path: Path, skipped: list[tuple[str, str]]) -> list[Found]:
    try:
        return _read_zip(path, skipped)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        # A CRC mismatch, a cut entry, an unknown compression: the download is damaged, and which of its
        # files are sound cannot be known. Nothing is placed.
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UsageError(f"{path}: damaged zip ({detail}): download the submissions again") from None


def _read_zip(path: Path, skipped: list[tuple[str, str]]) -> list[Found]:
    found, total = [], 0
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_ENTRIES:
            raise UsageError(f"{path}: {len(members)} entries, more than {MAX_ENTRIES}; refusing to read it")
        for info in members:
            name = _member_name(info)
            if info.is_dir() or JUNK.search(name):
                continue
            if not _safe_member(info.filename):
                skipped.append((name, "unsafe path in the zip (absolute or '..'): ignored"))
                continue
            if info.flag_bits & 0x1:  # zipfile would ask for a password: no LMS encrypts its downloads
                skipped.append((name, "encrypted entry in the zip: ignored"))
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                skipped.append((name, "symbolic link in the zip: ignored"))
                continue
            if info.file_size > MAX_ENTRY_BYTES or (info.compress_size and
                                                    info.file_size / info.compress_size > MAX_COMPRESSION_RATIO
                                                    and info.file_size > 2**20):
                skipped.append((name, f"too large ({info.file_size / 2**20:.0f} MB uncompressed): ignored"))
                continue
            data = _read_capped(archive, info)
            if data is None:
                skipped.append((name, "larger than its header says (corrupt or hostile zip): ignored"))
                continue
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise UsageError(f"{path}: more than {MAX_TOTAL_BYTES / 2**30:.0f} GB uncompressed; refusing")
            found.append(Found(name, data, _entry_time(info)))
    return found


def _entry_time(info: zipfile.ZipInfo) -> datetime | None:
    try:
        return datetime(*info.date_time)
    except ValueError:  # a DOS date of month 0 or day 0 (some zip writers): the time is unknown, the file fine
        return None


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """Read an entry without trusting its declared size."""
    with archive.open(info) as stream:
        data = stream.read(MAX_ENTRY_BYTES + 1)
    return None if len(data) > MAX_ENTRY_BYTES else data


def read_folder(root: Path, skipped: list[tuple[str, str]]) -> list[Found]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = unicodedata.normalize("NFC", path.relative_to(root).as_posix())
        if path.is_symlink():
            skipped.append((relative, "symbolic link: ignored"))
            continue
        if not path.is_file() or JUNK.search(relative):
            continue
        if path.stat().st_size > MAX_ENTRY_BYTES:
            skipped.append((relative, f"too large ({path.stat().st_size / 2**20:.0f} MB): ignored"))
            continue
        found.append(Found(relative, path.read_bytes(), datetime.fromtimestamp(path.stat().st_mtime)))
        if len(found) > MAX_ENTRIES:
            raise UsageError(f"{root}: more than {MAX_ENTRIES} files; refusing to read it")
    return found


# ---------------------------------------------------------------- identifying


def read_context(files: list[Found], lab: str, labs: list[str], zone: tzinfo) -> Context:
    """Gradescope metadata and Blackboard receipts, read before the files they describe."""
    context = Context(lab, labs, zone)
    for found in files:
        name = PurePosixPath(found.source).name
        if name == "submission_metadata.yml":
            found.action = "read"
            try:
                context.gradescope = {**(context.gradescope or {}), **gradescope_metadata(found.data)}
                found.notes.append("Gradescope submission metadata")
            except (ValueError, TypeError, RecursionError, yaml.YAMLError) as error:
                found.action = "not placed"  # nothing is placed from metadata that cannot be read
                found.notes.append(f"unreadable Gradescope metadata: {type(error).__name__}: {str(error)[:200]}")
        elif name.lower().endswith(".txt") and (match := BLACKBOARD.match(name[:-4])) and not match["file"]:
            found.action = "read"
            receipt = blackboard_receipt(found.data)
            if receipt:
                context.receipts[match["prefix"]] = receipt
                found.notes.append("Blackboard receipt")
            else:
                found.notes.append("Blackboard receipt without a 'Name: ... (user)' line")
    return context


def identify_all(files: list[Found], context: Context, roster: Roster | None) -> list[Found]:
    """One Found per (file, student), identities completed from the roster."""
    result = []
    for found in files:
        if found.action:
            result.append(found)
            continue
        placement = identify(found.source, context)
        if placement is None:
            found.action = "not placed"
            found.notes.append("no student in the path (expected an LMS download layout or <id>/<file>)")
            result.append(found)
            continue
        found.layout = placement.layout
        if placement.problem:
            found.action = "not placed"
            found.notes.append(placement.problem)
            result.append(found)
            continue
        found.notebook_stem = normalise_stem(placement.filename)
        found.late, found.submitted_at, found.attachment = placement.late, placement.submitted_at, placement.attachment
        if len(placement.identities) > 1:  # a Gradescope group or a Moodle team: the notebook is every member's
            found.notes.append(f"group submission of {len(placement.identities)} students")
        for index, identity in enumerate(placement.identities):
            one = found if index == 0 else copy.copy(found)
            one.notes = list(found.notes)
            known = roster.find(identity) if roster else None
            one.identity = identity.merged(known)
            if roster is not None and known is None and roster.kind == identity.lms:
                one.notes.append(f"not on the {roster.kind} roster: check the download is this course's")
            if known and known.extra.get("Last modified (submission)") and one.submitted_at is None:
                # Moodle's worksheet has the submission time the download lacks.
                one.submitted_at = parse_time(known.extra["Last modified (submission)"], context.zone)
            result.append(one)
    return result


# ---------------------------------------------------------------- choosing


def releaseanswer_sources(course: Course, lab: str, canonical: str) -> dict[str, str]:
    """grade_id -> source of the release's answer cells (what an untouched stub contains)."""
    path = course.release / lab / f"{canonical}.ipynb"
    if not path.is_file():
        return {}
    return answer_sources(path.read_bytes()) or {}


def choose(candidates: list[Found], canonical: str, lab: str) -> tuple[Found, list[Found], str]:
    """The notebook to grade among a student's notebooks, the others, and why (the documented rule)."""
    def named(found: Found) -> int:
        stem = (found.notebook_stem or "").lower()
        return 2 if stem == canonical.lower() else 1 if lab.lower() in stem else 0

    ranked = sorted(candidates, key=lambda f: (not f.stub, named(f), f.order()), reverse=True)
    chosen, others = ranked[0], ranked[1:]
    if not others:
        return chosen, others, ""
    if any(o.stub for o in others) and not chosen.stub:
        why = "the others are unchanged copies of the release" if all(o.stub for o in others) \
            else "edited, named for the lab, latest"
    elif any(named(o) < named(chosen) for o in others):
        why = f"named for {lab}"
    else:
        why = "latest upload"
    return chosen, others, why


def plan(files: list[Found], lab: str, canonical: str, release: dict[str, str] | None = None) -> list[Found]:
    """Decide, for every file, which student's submission it is or why it is not used."""
    if any(not f.action and not f.layout for f in files):  # not identified yet (callers other than collect)
        files[:] = identify_all(files, read_context(files, lab, [lab], UTC), None)
    by_student: dict[str, list[Found]] = {}
    raw_ids: dict[str, set] = {}
    for found in files:
        if found.action:
            continue
        if not is_notebook(found.source):
            found.action = "not placed"
            found.notes.append("not a notebook")
            continue
        if found.student is None:
            found.action = "not placed"
            found.notes.append("empty LMS user id")
            continue
        found.stub = is_release_stub(found.data, release or {})
        by_student.setdefault(found.student, []).append(found)
        raw_ids.setdefault(found.student, set()).add((found.identity.lms, found.identity.user))
    for student, candidates in by_student.items():
        if len(raw_ids[student]) > 1:  # only possible for hashed ids: refuse rather than merge
            for found in candidates:
                found.action = "not placed"
                found.notes.append(f"two different LMS ids map to student id {student}: rename by hand")
            continue
        chosen, others, why = choose(candidates, canonical, lab)
        chosen.action = "place"
        for other in others:
            other.action = "not placed"
            stub = " (an unchanged copy of the release)" if other.stub else ""
            other.notes.append(f"{student} submitted {len(candidates)} notebooks; used {chosen.source}{stub}")
        if others:
            chosen.notes.append(f"chosen from {len(candidates)} notebooks: {why}")
        if chosen.stub:
            chosen.notes.append("unchanged copy of the release (will score 0)")
        if chosen.notebook_stem != canonical and not others:
            chosen.notes.append(f"only notebook of this student, named '{chosen.notebook_stem}'")
    return files


# ---------------------------------------------------------------- placing, with history and times


def _record(found: Found, timestamp: datetime | None) -> dict:
    identity = found.identity
    return {"lms": identity.lms, "user": identity.user, "key": identity.key, "name": identity.name,
            "email": identity.email,
            "sis_id": identity.sis_id, "login": identity.login, "section": identity.section,
            "source": found.source, "sha256": hashlib.sha256(found.data).hexdigest(),
            "submitted_at": found.submitted_at.isoformat() if found.submitted_at else None,
            "timestamp": timestamp.isoformat() if timestamp else None, "late": found.late,
            "attachment": found.attachment, "resubmission": resubmission_number(found.source),
            "collected_at": datetime.now(UTC).isoformat()}


def _older_than(found: Found, previous: dict) -> bool:
    """Whether this file is known to be an older upload than the one collected before."""
    if found.submitted_at and previous.get("submitted_at"):
        return found.submitted_at < datetime.fromisoformat(previous["submitted_at"])
    if found.attachment and previous.get("attachment"):
        return (found.attachment, resubmission_number(found.source)) < \
            (previous["attachment"], previous.get("resubmission", 0))
    return False  # unknown: the download in hand is the LMS's latest word


def submission_time(found: Found, due: datetime | None) -> tuple[datetime | None, str]:
    """The time written to timestamp.txt, and a note when it is not the LMS's own."""
    if found.submitted_at:
        return found.submitted_at.astimezone(UTC), ""
    if found.late:
        if due is None:
            return None, "late by the LMS, but no due date is set (c.LateWork.duedates): no penalty applied"
        return due + LATE_MARGIN, "late by the LMS (no time in the download): recorded as just after the due date"
    return None, ""


def _place_one(found: Found, course: Course, lab: str, canonical: str, replace: bool, due: datetime | None,
               previous: dict, history: Path, run: str) -> dict | None:
    """Write one file of the batch; returns its lms.json record (None: an older upload, kept out)."""
    folder = course.submitted / found.student / lab
    target = folder / f"{canonical}.ipynb"
    found.target = str(target.relative_to(course.root))
    timestamp, note = submission_time(found, due)
    if note:
        found.notes.append(note)
    if target.exists():
        if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(found.data).digest():
            found.action = "unchanged"
        elif not replace and _older_than(found, previous):
            found.action = "kept existing"
            found.notes.append("older than the submission already collected (use --replace to take it)")
            return None
        else:
            kept = history / found.student / f"{run}_{canonical}.ipynb"
            kept.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(kept, target.read_bytes())
            found.action = "replaced"
            found.notes.append(f"replaced the previous submission (kept as {kept.relative_to(course.root)})")
    else:
        found.action = "placed"
    folder.mkdir(parents=True, exist_ok=True)
    if found.action != "unchanged":
        write_bytes(target, found.data)
    stamp = folder / "timestamp.txt"
    if timestamp:
        write_text(stamp, timestamp.astimezone(UTC).strftime(TIMESTAMP_FORMAT) + "\n")
    elif stamp.exists():
        stamp.unlink()  # the time of an earlier upload would be stale
    if found.late and not note:
        found.notes.append("marked late by the LMS")
    return _record(found, timestamp)


def place(files: list[Found], course: Course, lab: str, canonical: str, replace: bool,
          due: datetime | None = None) -> None:
    state = load_state(course, lab)
    history = course.collect_history(lab)
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    # Ctrl-C or SIGTERM waits for the batch (seconds): notebooks, timestamps and lms.json stay together; and
    # whatever fails (a full disk), the record of what was placed is written.
    with deferred_interrupts():
        try:
            for found in files:
                if found.action == "place":
                    record = _place_one(found, course, lab, canonical, replace, due, state.get(found.student, {}),
                                        history, run)
                    if record is not None:
                        state[found.student] = record
        finally:
            path = state_path(course, lab)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps(state, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


# ---------------------------------------------------------------- reporting

COLUMNS = ["source", "layout", "student", "lms_user_id", "name", "action", "target", "late", "submitted_at", "notes"]


def _rows(files: list[Found], skipped: list[tuple[str, str]]) -> list[list[str]]:
    # File names, names and notes quote what students uploaded: no formulas, no control characters.
    rows = []
    for found in files:
        identity = found.identity
        rows.append([csv_safe(found.source), found.layout, csv_safe(found.student or ""),
                     csv_safe(identity.user if identity else ""), csv_safe(identity.name if identity else ""),
                     found.action, csv_safe(found.target), "yes" if found.late else "",
                     found.submitted_at.isoformat() if found.submitted_at else "", csv_safe("; ".join(found.notes))])
    rows += [[csv_safe(source), "", "", "", "", "not placed", "", "", "", csv_safe(reason)]
             for source, reason in skipped]
    return rows


def write_report(files: list[Found], skipped: list[tuple[str, str]], path: Path, log: Path | None = None,
                 download: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = _rows(files, skipped)
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    if log is not None:  # every run appended, never overwritten
        new = not log.exists()
        run = datetime.now(UTC).isoformat(timespec="seconds")
        with log.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["run", "download", *COLUMNS])
            writer.writerows([run, csv_safe(download), *row] for row in rows)


def print_report(files: list[Found], skipped: list[tuple[str, str]], report: Path) -> None:
    # Names come from the download: escape sequences or \r in a file name must not reach the terminal.
    placed = [f for f in files if f.action in ("placed", "replaced", "unchanged", "kept existing")]
    sources = {id(f): terminal_safe(f.source, 120) for f in placed}
    width = max((len(source) for source in sources.values()), default=10)
    for found in placed:
        late = " (late)" if found.late else ""
        who = terminal_safe(str(found.student), 60)
        if found.identity and found.identity.name:
            who += f" ({terminal_safe(found.identity.name, 60)})"
        notes = f"  [{terminal_safe('; '.join(found.notes))}]" if found.notes else ""
        print(f"{found.action:13} {sources[id(found)]:{width}} -> {who}{late}{notes}")
    unplaced = [(f.source, "; ".join(f.notes)) for f in files if f.action == "not placed"] + skipped
    if unplaced:
        print(f"\nCould not place {len(unplaced)} file(s):")
        for source, reason in unplaced:
            print(f"  {terminal_safe(source, 120)}: {terminal_safe(reason)}")
    strangers = sorted({str(f.student) for f in placed if any(n.startswith("not on the ") for n in f.notes)})
    if strangers:
        print(f"\nWARNING: {len(strangers)} student(s) not on the roster: "
              f"{terminal_safe(', '.join(strangers[:20]), 300)}")
    students = len({f.student for f in placed})
    print(f"\n{students} student(s), {len(unplaced)} file(s) not placed; report: {report}")


def time_zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UsageError(f"--timezone {name!r}: unknown time zone (e.g. Europe/Paris, America/New_York)") from error


def read_groups_file(path: Path) -> dict[str, list[Identity]]:
    if not path.is_file():
        raise UsageError(f"--groups {path}: no such file")
    try:
        return read_canvas_groups(path)
    except (ValueError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"--groups: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None


def read_roster_file(path: Path) -> Roster:
    if not path.is_file():
        raise UsageError(f"--roster {path}: no such file")
    try:
        return read_roster(path)
    except (ValueError, UnicodeDecodeError, csv.Error) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UsageError(f"--roster: {detail}") from None


def collect(course: Course, lab: str, download: Path, replace: bool = False, roster: Path | None = None,
            timezone: str | None = None, groups: Path | None = None) -> tuple[list[Found], list]:
    """Place the download's notebooks; returns (files, skipped) as reported."""

    canonical = course.notebook_name(lab) if course.source.joinpath(lab).is_dir() else \
        sorted(course.release.joinpath(lab).glob("*.ipynb"))[0].stem
    labs = course.labs() if course.source.is_dir() else [lab]
    skipped: list[tuple[str, str]] = []
    # Everything that can be refused is read first (zone, download, roster): a refused run writes nothing.
    zone = time_zone(timezone)
    files = read_download(download, skipped)
    new_roster = read_roster_file(roster) if roster is not None else None
    new_groups = read_groups_file(groups) if groups is not None else None
    with course_lock(course, "collect"):  # never a submission replaced under a grading run
        backup(course, "collect")
        if new_roster is not None:
            save_roster(course.root, new_roster, lab)
        if new_groups is not None:
            save_groups(course.root, lab, new_groups)
        known = load_roster(course.root, [lab])
        context = read_context(files, lab, labs, zone)
        teams = team_members(load_lab_worksheet(course.root, lab))
        if teams is not None:
            context.teams = {team_key(name): members for name, members in teams.items()}
        context.canvas_groups = canvas_group_of(course.root, lab)
        files = identify_all(files, context, known)
        plan(files, lab, canonical, releaseanswer_sources(course, lab, canonical))
        place(files, course, lab, canonical, replace, due_date(course, lab))
        register_students(course, lab, [f.identity for f in files if f.action in
                                        ("placed", "replaced", "unchanged", "kept existing")])
        apply_dates(course, lab)
        report = course.collect_report(lab)
        write_report(files, skipped, report, report.with_name("collect-log.csv"), download.name)
        print_report(files, skipped, report)
        stale = ungraded(course, lab)
    if stale:
        print(f"{len(stale)} student(s) of {lab} without a current grade (new, or submitted again since grading): "
              f"`gradekit grade {lab} --outdated` grades them; until then their grade is exported blank")
    return files, skipped


