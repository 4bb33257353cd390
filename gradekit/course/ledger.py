"""The grade ledger: is a student's grade of a lab still the grade of what is in `submitted/` now?

A grade is a function of the exact files graded and of the lab's tests. `grade` records in status.json,
per student, the digest of the submission folder it staged (the copy it graded, so a `collect` during
the run cannot slip a newer file under an older grade) and the digest of the lab's tests in the
gradebook. Anything that no longer matches is *outdated*: a re-collected or re-placed notebook, tests
changed by `generate_assignment`, a grader error, a run killed before it wrote its status. An outdated
grade is never exported, reported or shown to the student as current; `grade --outdated` regrades
exactly those students.

A grade made by plain `nbgrader autograde` has no ledger entry: it counts as current while its
autograded notebook is at least as new as every submitted file (nbgrader's own order of work).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from gradekit.course.status import Status, StudentStatus, read_status

if TYPE_CHECKING:
    from nbgrader.api import Gradebook

    from gradekit.course.directory import Course

CHUNK = 1 << 20


# What of a submission folder is graded (staged), bounded: a folder placed by hand may hold a dataset or thousands of
# files, and each sandbox gets a 512 MB disk. Notebooks come first, so that a large data file never pushes one out.
MAX_STAGED_FILE_BYTES = 100 * 2**20  # as `collect` takes an entry (gradekit.intake.collect)
MAX_STAGED_BYTES = 256 * 2**20  # half the sandbox's default disk: the notebook's own writes need the rest
MAX_STAGED_FILES = 1000


def _regular_files(folder: Path, notebooks: list[Path], others: list[Path], budget: list[int]) -> None:
    """The regular files below `folder` (no symlinks, nothing special): every notebook, other files until one past
    MAX_STAGED_FILES; the walk stops after `budget[0]` entries."""
    for entry in sorted(folder.iterdir()):
        budget[0] -= 1
        if budget[0] < 0:
            return
        if entry.is_symlink():
            continue
        if entry.is_dir():
            _regular_files(entry, notebooks, others, budget)
        elif entry.is_file() and (entry.suffix == ".ipynb" or len(others) <= MAX_STAGED_FILES):
            (notebooks if entry.suffix == ".ipynb" else others).append(entry)


def staged_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The files of a submission folder that staging copies and grades (regular files, within the bounds above,
    notebooks first), and one note per file left out, saying why."""
    notebooks: list[Path] = []
    others: list[Path] = []
    _regular_files(folder, notebooks, others, [10 * MAX_STAGED_FILES])
    found = notebooks + others
    kept: list[Path] = []
    left_out: list[str] = []
    total = 0
    for path in found:
        name, size = path.relative_to(folder).as_posix(), path.stat().st_size
        if len(kept) >= MAX_STAGED_FILES:
            left_out.append(f"{name} (more than {MAX_STAGED_FILES} files)")
        elif size > MAX_STAGED_FILE_BYTES:
            left_out.append(f"{name} ({size / 2**20:.0f} MB: a file may have {MAX_STAGED_FILE_BYTES // 2**20} MB)")
        elif total + size > MAX_STAGED_BYTES:
            left_out.append(f"{name} ({size / 2**20:.0f} MB: the folder may have {MAX_STAGED_BYTES // 2**20} MB)")
        else:
            kept.append(path)
            total += size
    return kept, left_out


def submission_digest(folder: Path) -> str:
    """sha256 over every file of a submission folder that is graded (`staged_files`: relative path, size,
    contents); "" when there is no folder."""
    if not folder.is_dir() or folder.is_symlink():
        return ""
    digest = hashlib.sha256()
    for path in staged_files(folder)[0]:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def tests_digest(gradebook: Gradebook, lab: str) -> str:
    """sha256 of the lab as nbgrader grades it: each notebook's locked and test cells (their checksums,
    which `OverwriteCells` and the judge use) and each graded cell's points. "" for an unknown lab."""
    from nbgrader.api import MissingEntry

    try:
        assignment = gradebook.find_assignment(lab)
    except MissingEntry:
        return ""
    parts = []
    for notebook in sorted(assignment.notebooks, key=lambda nb: nb.name):
        parts += [f"source {notebook.name} {cell.name} {cell.checksum or ''}"
                  for cell in sorted(notebook.source_cells, key=lambda c: c.name)]
        parts += [f"grade {notebook.name} {cell.name} {cell.max_score:g} {cell.cell_type}"
                  for cell in sorted(notebook.grade_cells, key=lambda c: c.name)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _newest_mtime(folder: Path) -> float:
    return max((path.stat().st_mtime for path in staged_files(folder)[0]), default=0.0) if folder.is_dir() else 0.0


def why_outdated(entry: StudentStatus | None, current_input: str, current_tests: str,
                 graded_copy: Path | None = None, submitted: Path | None = None) -> str:
    """Why the student's grade is not the grade of what is submitted now; "" when it is.

    `entry` is the student's ledger entry (status.json), `current_input` the digest of their submission
    folder now ("" if none), `current_tests` the lab's tests digest now. Without an entry (graded by
    plain nbgrader), `graded_copy` (nbgrader's autograded notebook) must be at least as new as every file
    of `submitted`."""
    if entry is None or not entry.input_digest:
        if entry is not None and entry.status == Status.GRADER_ERROR:
            return "the grader failed on it"
        if graded_copy is None or submitted is None or not graded_copy.is_file():
            return ""  # nothing graded to be outdated (missing, or not graded yet: said elsewhere)
        if _newest_mtime(submitted) > graded_copy.stat().st_mtime:
            return "submitted again after grading"
        return ""
    if entry.status == Status.MISSING:
        return ""
    if entry.status == Status.GRADER_ERROR:
        return "the grader failed on it"
    if entry.input_digest != current_input:
        if not current_input:
            return "the graded submission is no longer in submitted/"
        return "submitted again after grading"
    if entry.tests_digest and current_tests and entry.tests_digest != current_tests:
        return "the lab's tests changed after grading"
    return ""


def outdated(course: Course, lab: str, students: list[str] | None = None) -> dict[str, str]:
    """student -> why their grade of `lab` is outdated, for every student with a submission or a ledger
    entry (or only `students`); students whose grade is current are not in it."""
    statuses = read_status(course, lab).students
    tests = ""
    if course.has_gradebook():
        with course.open_gradebook() as gradebook:
            tests = tests_digest(gradebook, lab)
    candidates = set(statuses) | {p.parent.name for p in course.submitted.glob(f"*/{lab}") if p.is_dir()}
    if students is not None:
        candidates &= set(students)
    name = course.notebook_name(lab) if course.source.joinpath(lab).is_dir() else ""
    found = {}
    for student in sorted(candidates):
        folder = course.submitted / student / lab
        reason = why_outdated(statuses.get(student), submission_digest(folder), tests,
                              course.autograded / student / lab / f"{name}.ipynb" if name else None, folder)
        if reason:
            found[student] = reason
    return found


def ungraded(course: Course, lab: str) -> list[str]:
    """Students whose submission of `lab` has no current grade: never graded, or graded on something else
    (`outdated`). What `grade --outdated` grades."""
    statuses = read_status(course, lab).students
    stale = outdated(course, lab)
    submitted = sorted(p.parent.name for p in course.submitted.glob(f"*/{lab}") if p.is_dir())
    graded: set[str] = set()
    if course.has_gradebook():
        from nbgrader.api import MissingEntry

        with course.open_gradebook() as gradebook:
            try:  # `collect` registers a submission before it is graded: a row is not a grade
                graded = {s.student.id for s in gradebook.assignment_submissions(lab)
                          if any(g.auto_score is not None or g.manual_score is not None
                                 for nb in s.notebooks for g in nb.grades)}
            except MissingEntry:
                graded = set()
    return [s for s in submitted
            if s in stale or s not in graded or (statuses.get(s) and statuses[s].status == Status.MISSING)]
