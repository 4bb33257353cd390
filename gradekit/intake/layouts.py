"""The file layouts of LMS bulk downloads, and what each says about a file: whose, when, late or not.

Each rule is read from the LMS's own code (cited beside each pattern), not from examples:
* Canvas (`lib/content_zipper.rb`, `get_filename`, `sanitize_user_name`, `add_upload_submission`):
  `<sortablename>_[LATE_]<userid>_<attachmentid>_<file>`; the name is lower-cased and keeps `_` (but never
  `_<digits>_`); anonymous grading writes `[LATE_]anon_<anonymous id>_<attachmentid>_<file>`; re-uploads
  `<file>-1`, `-2`. Id: the user id (anonymous: `anon_<id>`); time: none, only the `LATE` flag.
* Moodle (`mod/assign/classes/downloader.php`, `get_student_prefix`, `load_submissionplugin_filelist`):
  the prefix `<Full Name>_<participant id>` (the name with `_` replaced by ' '), then
  `_assignsubmission_file` and, by default, a folder (`<prefix>_assignsubmission_file/<file>`, Moodle 4.1
  and later; `..._file_/<file>` before), or one flat name `<prefix>_assignsubmission_file_<file>`. Team
  submissions (4.1 and later) use `<group name>_<group id>` once per group: the worksheet's Group column
  says who is in it (`Context.teams`). Id: the participant id; time: none (the worksheet has it).
* Blackboard: `<Assignment>_<user>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>`, and a receipt
  `<...>_attempt_<...>.txt` (`Name: Jane Smith (jsmith)`); id: the user name; time: the attempt's.
* Gradescope export: `submission_<n>/<file>` and `submission_metadata.yml`; id: the SID, else the
  e-mail (every member of a group); time: `:created_at:`.
* folders: `[submitted/]<id>/[<lab>/]<file>`; id: the folder name; time: none.

Everything here is parsed from untrusted names and files, under size limits; nothing is executed
or resolved as a path.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import PurePosixPath

import yaml

from gradekit.course.roster import Identity, clean_field
from gradekit.course.safe_text import is_safe_student_id

MAX_METADATA_BYTES = 10 * 2**20
MAX_RECEIPT_BYTES = 2**20

# The name may hold '_' but never '_<digits>_' (sanitize_user_name), so the first `_<digits>_<digits>_`
# is the user and the attachment: Canvas's own reading (`Assignment#infer_comment_context_from_filename`).
CANVAS = re.compile(r"^(?P<name>.*?)_(?:(?P<late>late)_)?(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$",
                    re.IGNORECASE | re.DOTALL)
CANVAS_ANONYMOUS = re.compile(r"^(?:(?P<late>late)_)?anon_(?P<anon>[A-Za-z0-9]+)_(?P<attachment>\d+)_(?P<file>.+)$",
                              re.IGNORECASE | re.DOTALL)
# Moodle writes the full name (or team name) with '_' replaced by ' ', so the name has no '_'. A folder
# ends `_assignsubmission_file` (4.1 and later) or `_assignsubmission_file_` (earlier); a flat name goes on.
MOODLE = re.compile(r"^(?P<name>[^_]+)_(?P<user>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)"
                    r"(?:_(?P<rest>.*))?$", re.DOTALL)
MOODLE_FILENAME_CHARS = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")  # what clean_filename removes from a prefix
BLACKBOARD = re.compile(r"^(?P<prefix>(?P<assignment>.+)_(?P<user>[^_]+)_attempt_"
                        r"(?P<time>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d))(?:_(?P<file>.+))?$", re.DOTALL)
BLACKBOARD_NAME = re.compile(r"^\s*Name:\s*(?P<name>.*?)\s*\((?P<user>[^()\s]+)\)\s*$", re.MULTILINE)
GRADESCOPE_FOLDER = re.compile(r"^submission_\d+$")
NOTEBOOK = re.compile(r"\.ipynb(\.json)?$", re.IGNORECASE)
COPY_PREFIX = re.compile(r"^(copy of |copie de |kopie van |kopie von )+", re.IGNORECASE)
COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|-\d+|_\d+|\s+copy|_copy|-copy)+$", re.IGNORECASE)
RESUBMISSION = re.compile(r"(?:-|\()(\d+)\)?$")


def is_notebook(filename: str) -> bool:
    """`.ipynb`, and `.ipynb.json` (what some browsers and Drive save a notebook as)."""
    return NOTEBOOK.search(filename) is not None


def normalise_stem(filename: str) -> str:
    """`Copy of lab1_x (2).ipynb` / `lab1_x-1.ipynb.json` -> `lab1_x`."""
    stem = NOTEBOOK.sub("", PurePosixPath(filename).name).strip()
    stem = COPY_PREFIX.sub("", stem).strip()
    return COPY_SUFFIX.sub("", stem).strip()


def resubmission_number(filename: str) -> int:
    """Canvas and browsers number re-uploads: `-1`, ` (2)`; a higher number is a later upload."""
    match = RESUBMISSION.search(NOTEBOOK.sub("", PurePosixPath(filename).name))
    return int(match[1]) if match else 0


@dataclass
class Placement:
    """What the layout says about one file."""

    layout: str
    identities: list[Identity] = field(default_factory=list)  # several for a Gradescope group
    filename: str = ""  # the student's own file name, LMS prefix removed
    late: bool | None = None  # the LMS's own late flag, where it has one
    submitted_at: datetime | None = None
    attachment: int = 0  # Canvas attachment id: grows with every upload
    problem: str = ""  # why it cannot be placed


# ---------------------------------------------------------------- metadata files


class _LenientLoader(yaml.SafeLoader):
    """Safe YAML that reads Ruby-tagged values (Gradescope is a Rails app) as plain data."""


def _untagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_LenientLoader.add_multi_constructor("!", _untagged)


def _key(value: object) -> str:
    return str(value).lstrip(":")  # Gradescope writes Ruby symbols: `:submitters:`


def parse_time(value: object, zone: tzinfo = UTC) -> datetime | None:
    """A timestamp from metadata (datetime or text); naive times are in `zone`."""
    from dateutil import parser as date_parser

    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and 0 < len(value) < 100:
        try:
            moment = date_parser.parse(value)
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def gradescope_metadata(data: bytes) -> dict[str, dict]:
    """`submission_<n>` -> {"identities": [...], "submitted_at": datetime|None} from submission_metadata.yml."""
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"larger than {MAX_METADATA_BYTES // 2**20} MB")
    # An alias-heavy file can expand exponentially when walked: Gradescope never writes aliases.
    if re.search(rb"(^|[\s\[,{:-])[&*][A-Za-z0-9_]", data):
        raise ValueError("YAML anchors or aliases: not a Gradescope export")
    document = yaml.load(data.decode("utf-8", errors="replace"), Loader=_LenientLoader)  # noqa: S506 - SafeLoader
    if not isinstance(document, dict):
        raise ValueError("not a mapping of submissions")
    result = {}
    for key, entry in document.items():
        if not isinstance(entry, dict):
            continue
        entry = {_key(k): v for k, v in entry.items()}
        identities = []
        for person in entry.get("submitters") or []:
            if not isinstance(person, dict):
                continue
            person = {_key(k): v for k, v in person.items()}
            sid, email = clean_field(person.get("sid") or ""), clean_field(person.get("email") or "")
            identities.append(Identity("gradescope", sid or email, clean_field(person.get("name") or ""),
                                       email, sid))
        result[_key(key)] = {"identities": identities, "submitted_at": parse_time(entry.get("created_at"))}
    return result


def blackboard_receipt(data: bytes) -> tuple[str, str] | None:
    """(user name, display name) from a Blackboard receipt (`Name: Jane Smith (jsmith)`)."""
    match = BLACKBOARD_NAME.search(data[:MAX_RECEIPT_BYTES].decode("utf-8", errors="replace"))
    return (match["user"], clean_field(match["name"])) if match else None


# ---------------------------------------------------------------- one file


@dataclass
class Context:
    """What the download says besides file names: Gradescope metadata, Blackboard receipts."""

    lab: str
    labs: list[str]
    zone: tzinfo = UTC  # Blackboard writes attempt times in the server's time zone
    gradescope: dict[str, dict] | None = None
    receipts: dict[str, tuple[str, str]] = field(default_factory=dict)  # attempt prefix -> (user, name)
    # A Moodle team assignment (the worksheet has a Group column): team name key -> its members. None:
    # not known to be a team assignment, so a Moodle prefix names one participant.
    teams: dict[str, list[Identity]] | None = None
    # A Canvas group assignment (`collect --groups`): user id -> every member of that user's group. Canvas
    # sends one copy per group, under one member's id (`Assignment#representatives`), and posts a grade
    # to every member (`grade_student`): the copy is each member's.
    canvas_groups: dict[str, list[Identity]] = field(default_factory=dict)


def team_key(name: str) -> str:
    """A Moodle team name as its download prefix spells it and as the worksheet does, made comparable."""
    name = MOODLE_FILENAME_CHARS.sub("", unicodedata.normalize("NFC", name).replace("_", " "))
    return re.sub(r"\s+", " ", name).strip().casefold()


def identify(source: str, context: Context) -> Placement | None:
    """What the path says; None when no layout matches."""
    parts = [unicodedata.normalize("NFC", part) for part in PurePosixPath(source).parts]
    name = parts[-1]
    for index, part in enumerate(parts):  # Moodle: a folder of that name, or a flat file name
        moodle = MOODLE.match(part)
        if moodle and (index < len(parts) - 1 or moodle["rest"]):
            filename = name if index < len(parts) - 1 else moodle["rest"]
            if context.teams is not None:
                return _moodle_team(moodle, filename, context.teams)
            return Placement("moodle", [Identity("moodle", moodle["user"], clean_field(moodle["name"]))], filename)
    for part in parts[:-1]:
        if GRADESCOPE_FOLDER.match(part):
            return _gradescope(part, name, context)
    blackboard = BLACKBOARD.match(name)
    if blackboard and blackboard["file"]:
        return _blackboard(blackboard, context)
    anonymous = CANVAS_ANONYMOUS.match(name)
    if anonymous:  # anonymous grading: the id is the submission's anonymous id, not a user
        return Placement("canvas", [Identity("canvas", f"anon_{anonymous['anon']}")], anonymous["file"],
                         late=bool(anonymous["late"]), attachment=int(anonymous["attachment"][:18]))
    canvas = CANVAS.match(name)
    if canvas:
        sender = Identity("canvas", canvas["user"], clean_field(canvas["name"]))
        members = context.canvas_groups.get(canvas["user"])
        return Placement("canvas group" if members else "canvas", list(members) if members else [sender],
                         canvas["file"], late=bool(canvas["late"]), attachment=int(canvas["attachment"][:18]))
    return _folder(parts, context)


def _moodle_team(match: re.Match, filename: str, teams: dict[str, list[Identity]]) -> Placement:
    """A team's one copy (`<group name>_<group id>`): every member's, from the worksheet's Group column;
    never the participant whose number happens to equal the group id."""
    members = teams.get(team_key(match["name"]), [])
    placement = Placement("moodle team", list(members), filename)
    if not members:
        placement.problem = (f"team {clean_field(match['name'])!r} (group {match['user']}) is in no row of the "
                             "worksheet's Group column: give the worksheet of this assignment as --roster")
    return placement


def _gradescope(folder: str, name: str, context: Context) -> Placement:
    placement = Placement("gradescope", filename=name)
    if context.gradescope is None:
        placement.problem = "Gradescope submission folder, but no submission_metadata.yml in the download"
        return placement
    entry = context.gradescope.get(folder)
    if entry is None:
        placement.problem = f"{folder} is not in submission_metadata.yml"
        return placement
    placement.identities = [i for i in entry["identities"] if i.user]
    placement.submitted_at = entry["submitted_at"]
    if not placement.identities:
        placement.problem = f"{folder}: no submitter with an SID or e-mail in submission_metadata.yml"
    return placement


def _blackboard(match: re.Match, context: Context) -> Placement:
    user, display = match["user"], ""
    receipt = context.receipts.get(match["prefix"])
    # A user name with '_' cannot be read from the file name alone: the receipt says where it starts.
    if receipt and match["prefix"].endswith(f"_{receipt[0]}_attempt_{match['time']}"):
        user, display = receipt
    moment = datetime.strptime(match["time"], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=context.zone)
    return Placement("blackboard", [Identity("blackboard", user, display)], match["file"], submitted_at=moment)


def _folder(parts: list[str], context: Context) -> Placement | None:
    if parts[0] == "submitted":
        parts = parts[1:]
    if len(parts) < 2:
        return None
    student = parts[0]
    placement = Placement("folder", [Identity("folder", student)], parts[-1])
    if not is_safe_student_id(student):
        placement.identities = []
        placement.problem = "folder name is not a student id (letters, digits, '_', '.', '@', '-')"
    elif len(parts) >= 3 and parts[1] in context.labs and parts[1] != context.lab:
        placement.identities = []
        placement.problem = f"in the folder of another lab ({parts[1]})"
    return placement
