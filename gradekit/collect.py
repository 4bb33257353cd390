"""`collect`: place an LMS bulk download (zip or folder) into submitted/<student>/<lab>/<notebook>.ipynb.

Understands Canvas names (`lastnamefirstname_12345_67890_<file>`, `..._late_...`), Moodle folders
(`Full Name_12345_assignsubmission_file_/<file>`), nbgrader-like folders (`<student>/<file>`) and
normalises the notebook name (`Copy of ...`, `... (2)`, `...-1`). It never overwrites silently:
an existing submission is kept unless `--replace`, and when a student uploaded several notebooks
the newest one is used (the others are listed). Everything is reported, printed and written to
reports/<lab>/collect.csv, with the files it could not place.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from gradekit.course import Course
from gradekit.safe_text import csv_safe, terminal_safe

MAX_ENTRY_BYTES = 100 * 2**20  # same cap as gradekit.repair: a bigger notebook is rejected there anyway
MAX_TOTAL_BYTES = 4 * 2**30
MAX_ENTRIES = 20000
MAX_COMPRESSION_RATIO = 200  # beyond this an entry is treated as a zip bomb
JUNK = re.compile(r"(^|/)(__MACOSX|\.ipynb_checkpoints|\.DS_Store|Thumbs\.db|desktop\.ini)(/|$)|(^|/)\._")

CANVAS = re.compile(r"^(?P<student>[a-z0-9]+)_(?P<late>late_)?(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)$")
MOODLE = re.compile(r"^(?P<student>.+?)_(?P<user>\d+)_assignsubmission_(?:file|onlinetext)_?$")
COPY_PREFIX = re.compile(r"^(copy of |copie de |kopie van |kopie von )+", re.IGNORECASE)
COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|-\d+|_\d+|\s+copy|_copy|-copy)+$", re.IGNORECASE)


@dataclass
class Found:
    """One file of the download."""

    source: str  # its path inside the zip or folder
    data: bytes
    modified: datetime | None
    student: str | None = None
    notebook_stem: str | None = None
    late: bool = False
    action: str = ""
    target: str = ""
    notes: list[str] = field(default_factory=list)


def student_id(name: str) -> str:
    """A file-system and nbgrader friendly id: ascii, lower case, words joined by '_'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_name.lower())
    return "_".join(words)


def normalise_stem(filename: str) -> str:
    """`Copy of lab1_x (2).ipynb` / `lab1_x-1.ipynb` -> `lab1_x`."""
    stem = PurePosixPath(filename).name
    stem = re.sub(r"\.ipynb$", "", stem, flags=re.IGNORECASE).strip()
    stem = COPY_PREFIX.sub("", stem).strip()
    return COPY_SUFFIX.sub("", stem).strip()


def identify(found: Found) -> None:
    """Fill in student, notebook name and late flag from the path; leaves student None if unknown."""
    parts = PurePosixPath(found.source).parts
    name = parts[-1]
    for folder in parts[:-1]:
        moodle = MOODLE.match(folder)
        if moodle:
            found.student = student_id(moodle["student"]) or None
            found.notebook_stem = normalise_stem(name)
            return
    canvas = CANVAS.match(name)
    if canvas:
        found.student = student_id(canvas["student"])
        found.late = bool(canvas["late"])
        found.notebook_stem = normalise_stem(canvas["file"])
        return
    if len(parts) >= 2:  # <student>/<file> or <student>/<lab>/<file>
        found.student = student_id(parts[0])
        found.notebook_stem = normalise_stem(name)
    if found.student == "":  # no ascii letter or digit in the name: not an id (it would be submitted/<lab>)
        found.student = None


# ---------------------------------------------------------------- reading the download safely


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return not path.is_absolute() and ".." not in path.parts and not re.match(r"^[a-zA-Z]:", name)


def read_zip(path: Path, skipped: list[tuple[str, str]]) -> list[Found]:
    found, total = [], 0
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_ENTRIES:
            raise SystemExit(f"{path}: {len(members)} entries, more than {MAX_ENTRIES}; refusing to read it")
        for info in members:
            name = info.filename
            if info.is_dir() or JUNK.search(name):
                continue
            if not _safe_member(name):
                skipped.append((name, "unsafe path in the zip (absolute or '..'): ignored"))
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
                raise SystemExit(f"{path}: more than {MAX_TOTAL_BYTES / 2**30:.0f} GB uncompressed; refusing")
            found.append(Found(name.replace("\\", "/"), data, datetime(*info.date_time)))
    return found


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """Read an entry without trusting its declared size."""
    with archive.open(info) as stream:
        data = stream.read(MAX_ENTRY_BYTES + 1)
    return None if len(data) > MAX_ENTRY_BYTES else data


def read_folder(root: Path, skipped: list[tuple[str, str]]) -> list[Found]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            skipped.append((relative, "symbolic link: ignored"))
            continue
        if not path.is_file() or JUNK.search(relative):
            continue
        if path.stat().st_size > MAX_ENTRY_BYTES:
            skipped.append((relative, f"too large ({path.stat().st_size / 2**20:.0f} MB): ignored"))
            continue
        found.append(Found(relative, path.read_bytes(), datetime.fromtimestamp(path.stat().st_mtime)))
    return found


# ---------------------------------------------------------------- choosing and placing


def _resubmission_number(found: Found) -> int:
    """Canvas and browsers number re-uploads: `-1`, ` (2)`; a higher number is a later upload."""
    numbers = re.findall(r"(?:-|\()(\d+)\)?(?:\.ipynb)?$", PurePosixPath(found.source).name, re.IGNORECASE)
    return int(numbers[-1]) if numbers else 0


def choose(candidates: list[Found], canonical: str) -> tuple[Found, list[Found]]:
    """The notebook to grade among a student's files: the right name first, then the newest."""
    def key(found: Found):
        exact = found.notebook_stem == canonical
        return (exact, found.modified or datetime.min, _resubmission_number(found))

    ranked = sorted(candidates, key=key, reverse=True)
    return ranked[0], ranked[1:]


def plan(files: list[Found], lab: str, canonical: str) -> list[Found]:
    """Decide, for every file, which student's submission it is or why it is not used."""
    by_student: dict[str, list[Found]] = {}
    for found in files:
        identify(found)
        if not found.source.lower().endswith(".ipynb"):
            found.action = "not placed"
            found.notes.append("not a notebook")
            continue
        if found.student is None:
            found.action = "not placed"
            found.notes.append("no student in the file name (expected an LMS download layout)")
            continue
        if found.notebook_stem != canonical and lab.lower() not in (found.notebook_stem or "").lower():
            others = [f for f in files if f.student == found.student and f is not found
                      and f.source.lower().endswith(".ipynb")]
            if others:
                found.action = "not placed"
                found.notes.append(f"notebook name '{found.notebook_stem}' is not {canonical}")
                continue
            found.notes.append(f"only notebook of this student, named '{found.notebook_stem}'")
        by_student.setdefault(found.student, []).append(found)
    for student, candidates in by_student.items():
        chosen, others = choose(candidates, canonical)
        chosen.action = "place"
        for other in others:
            other.action = "not placed"
            other.notes.append(f"{student} submitted several notebooks; used the newest: {chosen.source}")
        if others:
            chosen.notes.append(f"newest of {len(candidates)} notebooks")
    return files


def place(files: list[Found], course: Course, lab: str, canonical: str, replace: bool) -> None:
    for found in files:
        if found.action != "place":
            continue
        target = course.submitted / found.student / lab / f"{canonical}.ipynb"
        found.target = str(target.relative_to(course.root))
        if target.exists():
            if hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(found.data).digest():
                found.action = "unchanged"
                continue
            if not replace:
                found.action = "kept existing"
                found.notes.append("a different submission is already there; use --replace to overwrite it")
                continue
            found.notes.append("replaced the previous submission")
            found.action = "replaced"
        else:
            found.action = "placed"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(found.data)
        if found.late:
            found.notes.append("marked late by the LMS")


def write_report(files: list[Found], skipped: list[tuple[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "student", "action", "target", "late", "notes"])
        # File names and notes quote what students uploaded: no formulas, no control characters.
        for found in files:
            writer.writerow([csv_safe(found.source), csv_safe(found.student or ""), found.action,
                             csv_safe(found.target), "yes" if found.late else "", csv_safe("; ".join(found.notes))])
        for source, reason in skipped:
            writer.writerow([csv_safe(source), "", "not placed", "", "", csv_safe(reason)])


def print_report(files: list[Found], skipped: list[tuple[str, str]], report: Path) -> None:
    # Names come from the download: escape sequences or \r in a file name must not reach the terminal.
    placed = [f for f in files if f.action in ("placed", "replaced", "unchanged", "kept existing")]
    sources = {id(f): terminal_safe(f.source, 120) for f in placed}
    width = max((len(source) for source in sources.values()), default=10)
    for found in placed:
        late = " (late)" if found.late else ""
        notes = f"  [{terminal_safe('; '.join(found.notes))}]" if found.notes else ""
        print(f"{found.action:13} {sources[id(found)]:{width}} -> {terminal_safe(str(found.student))}{late}{notes}")
    unplaced = [(f.source, "; ".join(f.notes)) for f in files if f.action == "not placed"] + skipped
    if unplaced:
        print(f"\nCould not place {len(unplaced)} file(s):")
        for source, reason in unplaced:
            print(f"  {terminal_safe(source, 120)}: {terminal_safe(reason)}")
    print(f"\n{len(placed)} submission(s), {len(unplaced)} file(s) not placed; report: {report}")


def collect(course: Course, lab: str, download: Path, replace: bool = False) -> tuple[list[Found], list]:
    """Place the download's notebooks; returns (files, skipped) as reported."""
    canonical = course.notebook_name(lab) if course.source.joinpath(lab).is_dir() else \
        sorted(course.release.joinpath(lab).glob("*.ipynb"))[0].stem
    skipped: list[tuple[str, str]] = []
    if download.is_dir():
        files = read_folder(download, skipped)
    elif zipfile.is_zipfile(download):
        files = read_zip(download, skipped)
    else:
        raise SystemExit(f"{download}: neither a folder nor a zip file")
    plan(files, lab, canonical)
    place(files, course, lab, canonical, replace)
    report = course.root / "reports" / lab / "collect.csv"
    write_report(files, skipped, report)
    print_report(files, skipped, report)
    return files, skipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("download", type=Path, help="LMS bulk-download zip, or a folder of files")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--replace", action="store_true",
                        help="overwrite submissions already in submitted/ (reported per student)")


def main(args: argparse.Namespace) -> int:
    from gradekit.course import repo_course

    course = Course(args.course.resolve()) if args.course else repo_course()
    if not args.download.exists():
        print(f"{args.download}: no such file or folder", file=sys.stderr)
        return 2
    files, skipped = collect(course, args.lab, args.download, replace=args.replace)
    return 0 if any(f.action in ("placed", "replaced", "unchanged") for f in files) else 1
