"""Students as the LMS names them, registered in nbgrader's gradebook when their work is collected."""

from __future__ import annotations

from gradekit.course.directory import Course
from gradekit.course.roster import Identity


def split_name(name: str) -> tuple[str, str]:
    """(first, last) from "Smith, Jane" (Canvas's sortable form) or "Jane Smith"; one word is a first name."""
    if "," in name:
        last, first = (part.strip() for part in name.split(",", 1))
        return first, last
    first, _, last = name.strip().partition(" ")
    return first, last.strip()


def register_students(course: Course, lab: str, identities: list[Identity | None]) -> int:
    """Students (with the LMS's name, e-mail and id) and their submission rows, in nbgrader's gradebook.

    The formgrader and `nbgrader export` then show real names; an extension can be granted
    before grading. Returns how many were registered (0 without a gradebook or assignment).
    """
    from nbgrader.api import MissingEntry

    if not course.has_gradebook():
        return 0
    done = 0
    with course.open_gradebook() as gradebook:
        try:
            gradebook.find_assignment(lab)
        except MissingEntry:
            return 0
        for identity in identities:
            if identity is None or identity.student is None:
                continue
            first, last = split_name(identity.name)
            # nbgrader's columns are 128 characters
            gradebook.update_or_create_student(identity.student, first_name=first[:128] or None,
                                               last_name=last[:128] or None,
                                               email=identity.email[:128] or None,
                                               lms_user_id=identity.user[:128])
            gradebook.update_or_create_submission(lab, identity.student)
            done += 1
    return done
