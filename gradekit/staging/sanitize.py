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

from gradekit.course.directory import Course
from gradekit.course.gradebook import nbgrader_api
from gradekit.course.status import Status, StudentStatus
from gradekit.staging.isolated import prepare_submission_bounded
from gradekit.staging.repair import InvalidSubmission


def sanitize_api(config: Config, staging: Path) -> NbGraderAPI:
    """nbgrader Autograde that only sanitizes, into staging/sanitized, on a gradebook copy."""
    config = copy.deepcopy(config)
    config.CourseDirectory.submitted_directory = str(staging / "submitted")
    config.CourseDirectory.autograded_directory = str(staging / "sanitized")
    config.CourseDirectory.db_url = f"sqlite:///{staging / 'gradebook-copy.db'}"
    config.Autograde.autograde_preprocessors = []
    return nbgrader_api(config)


def _copy_regular_files(source: Path, target: Path) -> None:
    """Copy a submission folder, skipping symlinks and anything that is not a file or folder."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_symlink():
            continue
        if entry.is_dir():
            _copy_regular_files(entry, target / entry.name)
        elif entry.is_file():
            shutil.copyfile(entry, target / entry.name)


def stage(course: Course, lab: str, student: str, staging: Path,
          release_nb: nbformat.NotebookNode | None) -> StudentStatus:
    """Copy and repair one submission into staging/submitted; Status.INVALID status if it cannot be graded."""
    status = StudentStatus(student, Status.GRADED)
    target = staging / "submitted" / student / lab
    _copy_regular_files(course.submitted / student / lab, target)
    notebook = target / f"{course.notebook_name(lab)}.ipynb"
    if not notebook.is_file():
        others = sorted(p for p in target.glob("*.ipynb") if p.is_file())
        if len(others) != 1:
            found = ", ".join(p.name for p in others) or "no notebook"
            status.status, status.reason = Status.INVALID, (
                f"no {notebook.name} in the submission ({found}); place files with `gradekit collect`")
            return status
        # One notebook under another name (`Copy of ...`, `lab1 (2).ipynb`): it is the submission.
        others[0].rename(notebook)
        status.repairs.append(f"graded {others[0].name} as {notebook.name}")
    try:
        prepared = prepare_submission_bounded(notebook, release_nb)  # time and memory limits, own process
    except InvalidSubmission as error:
        status.status, status.reason = Status.INVALID, str(error)
        return status
    status.repairs += prepared.repairs
    status.flags = list(prepared.flags)
    nbformat.write(prepared.notebook, notebook)
    return status


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
