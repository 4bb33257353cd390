"""Staging one submission: its files copied (regular files only), its notebook repaired in a bounded
process, then sanitized by nbgrader's own sanitize preprocessors on a private copy of the gradebook."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config

from gradekit.course.cells import answer_sources, is_release_stub
from gradekit.course.directory import Course
from gradekit.course.gradebook import nbgrader_api
from gradekit.course.ledger import staged_files, submission_digest
from gradekit.course.status import Status, StudentStatus
from gradekit.staging.isolated import prepare_submission_bounded
from gradekit.staging.repair import MAX_NOTEBOOK_BYTES, InvalidSubmission


def sanitize_api(config: Config, staging: Path) -> NbGraderAPI:
    """nbgrader Autograde that only sanitizes, into staging/sanitized, on a gradebook copy."""
    config = copy.deepcopy(config)
    config.CourseDirectory.submitted_directory = str(staging / "submitted")
    config.CourseDirectory.autograded_directory = str(staging / "sanitized")
    config.CourseDirectory.db_url = f"sqlite:///{staging / 'gradebook-copy.db'}"
    config.Autograde.autograde_preprocessors = []
    return nbgrader_api(config)


def _copy_staged_files(source: Path, target: Path) -> list[str]:
    """Copy what of a submission folder is graded (`staged_files`); the notes on what was left out."""
    files, left_out = staged_files(source)
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    return left_out


def stage(course: Course, lab: str, student: str, staging: Path,
          release_nb: nbformat.NotebookNode | None) -> StudentStatus:
    """Copy and repair one submission into staging/submitted; Status.INVALID status if it cannot be graded."""
    status = StudentStatus(student, Status.GRADED)
    target = staging / "submitted" / student / lab
    left_out = _copy_staged_files(course.submitted / student / lab, target)
    if left_out:  # a dataset handed in beside the notebook: graded without it, and said
        status.repairs.append(f"left out of grading: {', '.join(left_out[:5])}"
                              + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""))
    status.input_digest = submission_digest(target)  # the ledger: exactly what is graded, whatever collect does now
    notebook = target / f"{course.notebook_name(lab)}.ipynb"
    candidates = sorted(p for p in target.glob("*.ipynb") if p.is_file())
    chosen, why = choose_notebook(candidates, notebook, release_nb)
    if chosen is None:
        deeper = sorted(str(p.relative_to(target)) for p in target.glob("*/**/*.ipynb") if p.is_file())
        where = f"; found {', '.join(deeper[:3])} in a folder below: move it up" if deeper else ""
        status.status, status.reason = Status.INVALID, (
            f"no {notebook.name} in the submission ({why}){where}; place files with `gradekit collect`")
        return status
    if chosen != notebook:  # the submission under another name (`Copy of ...`, `lab1 (2).ipynb`)
        if notebook.exists():
            notebook.rename(notebook.with_name(f".not-graded-{notebook.name}"))
        chosen.rename(notebook)
        status.repairs.append(f"graded {chosen.name} as {notebook.name}" + (f" ({why})" if why else ""))
    try:
        prepared = prepare_submission_bounded(notebook, release_nb)  # time and memory limits, own process
    except InvalidSubmission as error:
        status.status, status.reason = Status.INVALID, str(error)
        return status
    status.repairs += prepared.repairs
    status.flags = list(prepared.flags)
    nbformat.write(prepared.notebook, notebook)
    return status


def choose_notebook(candidates: list[Path], canonical: Path,
                    release_nb: nbformat.NotebookNode | None) -> tuple[Path | None, str]:
    """The notebook to grade in a folder placed by hand, and why; (None, what was found) when there is none.

    The rule `collect` applies to a download: an edited notebook beats an unchanged copy of the release,
    then the one named for the lab, then the latest."""
    if not candidates:
        return None, "no notebook"
    if len(candidates) == 1:
        return candidates[0], ""
    release = answer_sources(nbformat.writes(release_nb).encode()) if release_nb is not None else None
    edited = {}
    for path in candidates:  # read no more of a file than a notebook may have
        with path.open("rb") as stream:
            edited[path] = not is_release_stub(stream.read(MAX_NOTEBOOK_BYTES + 1), release or {})

    ranked = sorted(candidates, key=lambda p: (edited[p], p == canonical, p.stat().st_mtime), reverse=True)
    chosen = ranked[0]
    others_edited = any(edited[path] for path in ranked[1:])
    reason = ("the others are unchanged copies of the release" if edited[chosen] and not others_edited
              else "named for the lab" if chosen == canonical else "the latest")
    return chosen, f"chosen from {len(candidates)} notebooks: {reason}"


class Sanitizer:
    """nbgrader's sanitize pass (its Autograde converter's `sanitize_preprocessors`, as configured: clear
    outputs, deduplicate ids, the kernelspec and the locked and test cells from the gradebook, check the
    cells' metadata), run on one notebook in memory.

    The same preprocessors as `nbgrader autograde`'s first pass, so the result is what scoring sanitizes
    again (`LookupExecute` checks it cell by cell), without the converter's per-call set-up, gradebook
    writes and file copies (two thirds of its cost). Reads the gradebook copy."""

    def __init__(self, config: Config, course: Course, lab: str, db_url: str) -> None:
        from nbgrader.converters import Autograde

        coursedir = CourseDirectory(config=config)
        self.preprocessors = [cls(config=config) for cls in Autograde(coursedir=coursedir, config=config)
                              .sanitize_preprocessors]
        self.ignore = list(coursedir.ignore)
        self.course, self.lab, self.db_url = course, lab, db_url

    def sanitize(self, staging: Path, student: str) -> Path:
        """staging/submitted/<student>/<lab>/ -> staging/sanitized/<student>/<lab>/ (notebook and files)."""
        name = self.course.notebook_name(self.lab)
        source = staging / "submitted" / student / self.lab
        target = staging / "sanitized" / student / self.lab
        nb = nbformat.read(source / f"{name}.ipynb", as_version=4)
        resources = {"unique_key": name, "output_files_dir": f"{name}_files",
                     "nbgrader": {"student": student, "assignment": self.lab, "notebook": name, "db_url": self.db_url}}
        for preprocessor in self.preprocessors:
            nb, resources = preprocessor(nb, resources)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.ipynb", *self.ignore), dirs_exist_ok=True)
        nbformat.write(nb, target / f"{name}.ipynb")
        return target / f"{name}.ipynb"
