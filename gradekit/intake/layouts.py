"""The file layouts of LMS bulk downloads, and what each says about a file: whose, when, late or not.

* Canvas: `<sortablename>_[LATE_]<userid>_<attachmentid>_<file>`, re-uploads `<file>-1`, `-2`;
  id: the user id; time: none, only the `LATE` flag (upper or lower case).
* Moodle: a folder `<Full Name>_<participantid>_assignsubmission_file_/<file>`, or that prefix and
  `<file>` as one flat name; id: the participant id; time: none (the grading worksheet has it).
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

CANVAS = re.compile(r"^(?P<name>[^_]*?)_(?:(?P<late>late)_)?(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)$",
                    re.IGNORECASE)
# Moodle writes the full name with '_' replaced by ' ', so the name has no '_'.
MOODLE = re.compile(r"^(?P<name>[^_]+)_(?P<user>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_(?P<rest>.*)$",
                    re.DOTALL)
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


def identify(source: str, context: Context) -> Placement | None:
    """What the path says; None when no layout matches."""
    parts = [unicodedata.normalize("NFC", part) for part in PurePosixPath(source).parts]
    name = parts[-1]
    for index, part in enumerate(parts):  # Moodle: a folder of that name, or a flat file name
        moodle = MOODLE.match(part)
        if moodle and (index < len(parts) - 1 or moodle["rest"]):
            filename = name if index < len(parts) - 1 else moodle["rest"]
            return Placement("moodle", [Identity("moodle", moodle["user"], clean_field(moodle["name"]))], filename)
    for part in parts[:-1]:
        if GRADESCOPE_FOLDER.match(part):
            return _gradescope(part, name, context)
    blackboard = BLACKBOARD.match(name)
    if blackboard and blackboard["file"]:
        return _blackboard(blackboard, context)
    canvas = CANVAS.match(name)
    if canvas:
        return Placement("canvas", [Identity("canvas", canvas["user"], clean_field(canvas["name"]))],
                         canvas["file"], late=bool(canvas["late"]), attachment=int(canvas["attachment"][:18]))
    return _folder(parts, context)


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
