"""What `collect`, `feedback`, `report` and `python -m gradekit.lms` check before they touch anything.

Each check raises `gradekit.exits.UsageError` with one line saying what is wrong and what to do;
`gradekit.__main__.run_command` prints it and exits 2. They only read: asking whether a gradebook
exists must not create one (opening nbgrader's `Gradebook` creates its tables), so the file (or the
server's tables) is looked for first.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from gradekit import exits
from gradekit.course import Course, repo_course
from gradekit.exits import UsageError


def course_at(path: Path | None) -> Course:
    """The course in `path` (default: this repository); a path that is not a folder is a usage error."""
    if path is None:
        return repo_course()
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--course {path}: no such folder")
    return Course(root)


def gradebook_labs(course: Course) -> list[str]:
    """The labs nbgrader's gradebook knows (released with `nbgrader generate_assignment`), sorted."""
    exits.require_gradebook(course)
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), Gradebook(course.db_url) as gradebook:
        warnings.simplefilter("ignore")  # SQLAlchemy notes from nbgrader's models
        return sorted(a.name for a in gradebook.assignments)


def require_gradebook_labs(course: Course, labs: list[str]) -> list[str]:
    """`labs` (or every lab of the gradebook when empty), each known to the gradebook."""
    known = gradebook_labs(course)
    if not labs:
        if not known:
            raise UsageError(f"the gradebook of {course.root} has no lab yet: release one first (`make release`)")
        return known
    unknown = [lab for lab in dict.fromkeys(labs) if lab not in known]
    if unknown:
        names = ", ".join(repr(lab) for lab in unknown)
        raise UsageError(f"unknown lab {names} in {course.root} (labs in the gradebook: {', '.join(known) or 'none'})")
    return list(dict.fromkeys(labs))


def require_collectable_lab(course: Course, lab: str) -> None:
    """`collect` runs after the release (it needs the notebook's name and the release's stubs to tell an
    untouched copy from an answer), possibly before any grading: the lab must be in source/, released,
    and in the gradebook."""
    exits.require_lab(course, lab)
