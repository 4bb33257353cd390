"""Hand grades belong to the answer they graded.

nbgrader keeps a cell's manual score when it autogrades again and flags the cell "needs manual grading":
the old points then count for a new answer, and an invalid resubmission (`record_ungradable`) deletes
them with the submission row. Here each hand grade is kept aside, with a digest of the answer it graded,
in `reports/<lab>/hand-grades/<student>.json`, before anything can replace it (`keep_aside`, before each
autograde and before an invalid resubmission is recorded). After nbgrader has scored the new notebook
(`settle`):

* the same answer: the kept grade and comment stand, graded (also when nbgrader's row was recreated);
* another answer: no hand grade counts any more; the cell needs grading again, and its comment says
  what the earlier answer got (`Previously graded by hand: 2 / 2, for an earlier answer`).

A run killed between nbgrader's commit and `settle` leaves the cells pending; the next `grade` settles
every student first (`settle_lab`), so nothing stays pending for good.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat
from nbgrader.api import MissingEntry

from gradekit.course.cells import grade_id_of, is_answer_cell
from gradekit.course.directory import Course
from gradekit.course.files import write_text

PREVIOUS = "Previously graded by hand"


def kept_path(course: Course, lab: str, student: str) -> Path:
    return course.lab_reports(lab) / "hand-grades" / f"{student}.json"


def answer_digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def _answers(course: Course, lab: str, student: str) -> dict[str, str]:
    """grade_id -> digest of the answer in the student's autograded notebook (what was, or is, graded)."""
    path = course.autograded / student / lab / f"{course.notebook_name(lab)}.ipynb"
    if not path.is_file():
        return {}
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable copy: no answer known, nothing kept or restored
        return {}
    # A written answer is its own cell; a test cell's score (overridden by hand) belongs to all the answers.
    every_answer = answer_digest("\n\0".join(cell.source.strip() for cell in nb.cells if is_answer_cell(cell)))
    return {grade_id_of(cell): answer_digest(cell.source) if is_answer_cell(cell) else every_answer
            for cell in nb.cells if grade_id_of(cell)}


def load_kept(course: Course, lab: str, student: str) -> dict[str, dict]:
    path = kept_path(course, lab, student)
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def keep_aside(course: Course, lab: str, student: str) -> dict[str, dict]:
    """Record every hand grade the instructor has given (graded, not pending) with the answer it graded.
    Grades already kept stay (a pending cell left by a killed run is not a new grade)."""
    name = course.notebook_name(lab)
    kept = load_kept(course, lab, student)
    with course.open_gradebook() as gradebook:
        try:
            notebook = gradebook.find_submission_notebook(name, lab, student)
        except MissingEntry:
            return kept
        comments = {c.name: c.manual_comment for c in notebook.comments}
        graded = [(g.name, float(g.manual_score), float(g.max_score)) for g in notebook.grades
                  if g.manual_score is not None and not g.needs_manual_grade]
    if not graded:
        return kept
    answers = _answers(course, lab, student)
    changed = False
    for grade_id, score, max_score in graded:
        if grade_id not in answers:
            continue
        entry = {"answer": answers[grade_id], "score": score, "max_score": max_score,
                 "comment": comments.get(grade_id) or ""}
        if kept.get(grade_id) != entry:
            kept[grade_id], changed = entry, True
    if changed:
        write_text(kept_path(course, lab, student), json.dumps(kept, indent=1, ensure_ascii=False) + "\n")
    return kept


def settle(course: Course, lab: str, student: str) -> list[str]:
    """After nbgrader scored the student's notebook: each kept hand grade back where its answer is unchanged,
    and no hand grade where the answer changed. Returns the grade ids that need grading by hand again."""
    kept = load_kept(course, lab, student)
    if not kept:
        return []
    answers = _answers(course, lab, student)
    name = course.notebook_name(lab)
    again = []
    with course.open_gradebook() as gradebook:
        for grade_id, entry in kept.items():
            try:
                grade = gradebook.find_grade(grade_id, name, lab, student)
                comment = gradebook.find_comment(grade_id, name, lab, student)
            except MissingEntry:
                continue
            if answers.get(grade_id) == entry.get("answer"):
                if grade.needs_manual_grade or grade.manual_score is None:
                    grade.manual_score, grade.needs_manual_grade = entry.get("score"), False
                    comment.manual_comment = entry.get("comment") or None
            elif grade.manual_score is not None or grade.needs_manual_grade:
                grade.manual_score, grade.needs_manual_grade = None, True
                comment.manual_comment = None
                comment.auto_comment = (f"{PREVIOUS}: {entry.get('score', 0):g} / {entry.get('max_score', 0):g}, "
                                        "for an earlier answer; this answer needs grading again.")
                again.append(grade_id)
        gradebook.db.commit()
    return again


def unsettled(course: Course, lab: str) -> list[str]:
    """Students with kept hand grades and a cell pending (what a run killed after nbgrader's commit leaves)."""
    folder = course.lab_reports(lab) / "hand-grades"
    if not folder.is_dir():
        return []
    name = course.notebook_name(lab)
    found = []
    with course.open_gradebook() as gradebook:
        for path in sorted(folder.glob("*.json")):
            try:
                notebook = gradebook.find_submission_notebook(name, lab, path.stem)
            except MissingEntry:
                continue
            if any(g.needs_manual_grade for g in notebook.grades):
                found.append(path.stem)
    return found


def settle_lab(course: Course, lab: str) -> list[str]:
    """`settle` every student `unsettled` finds; returns them."""
    students = unsettled(course, lab)
    for student in students:
        settle(course, lab, student)
    return students
