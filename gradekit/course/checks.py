"""What `collect`, `feedback`, `report` and `python -m gradekit.lms` check before they touch anything.

Each check raises `gradekit.course.exits.UsageError` with one line saying what is wrong and what to do;
`gradekit.commands.run_command` prints it and exits 2. They only read: asking whether a gradebook
exists must not create one (opening nbgrader's `Gradebook` creates its tables), so the file (or the
server's tables) is looked for first.
"""

from __future__ import annotations

from pathlib import Path

from gradekit.course.backup import check_gradebook_file
from gradekit.course.directory import Course, repo_course
from gradekit.course.exits import UsageError


def course_at(path: Path | None) -> Course:
    """The course in `path` (default: this repository); a path that is not a folder is a usage error."""
    if path is None:
        return repo_course()
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--course {path}: no such folder")
    return Course(root)


def require_lab(course: Course, lab: str) -> None:
    """The lab exists in source/, is released, and nbgrader's gradebook knows it."""
    labs = course.labs() if course.source.is_dir() else []
    if lab not in labs:
        known = ", ".join(labs) or "none"
        raise UsageError(f"unknown lab {lab!r} in {course.root} (labs in source/: {known})")
    name = course.notebook_name(lab)
    if not (course.release / lab / f"{name}.ipynb").is_file():
        raise UsageError(f"{lab} is not released: run `make release` (nbgrader generate_assignment {lab}) first")
    require_gradebook(course)
    from nbgrader.api import MissingEntry

    with course.open_gradebook() as gradebook:
        try:
            gradebook.find_notebook(name, lab)
        except MissingEntry:
            raise UsageError(f"the gradebook does not know {lab}: run `make release` "
                             f"(nbgrader generate_assignment {lab}) in this course first") from None


def require_gradebook(course: Course) -> None:
    has_gradebook = getattr(course, "has_gradebook", None)
    present = has_gradebook() if callable(has_gradebook) else Path(course.gradebook).exists()
    if not present:
        raise UsageError(f"no gradebook in {course.root}: release the labs first (`make release`)")
    check_gradebook_file(course)


def gradebook_labs(course: Course) -> list[str]:
    """The labs nbgrader's gradebook knows (released with `nbgrader generate_assignment`), sorted."""
    require_gradebook(course)
    with course.open_gradebook() as gradebook:
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
    require_lab(course, lab)
