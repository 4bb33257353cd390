"""Work that cannot be graded (an invalid notebook): 0 points with the reason, in nbgrader's gradebook,
and `reports/<lab>/ungradable.json` so that feedback, the report and the LMS export say why."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from gradekit.course.directory import Course
from gradekit.course.files import write_text
from gradekit.scoring.hand_grades import keep_aside


def ungradable_path(course: Course, lab: str) -> Path:
    return course.ungradable_file(lab)


def load_ungradable(course: Course, lab: str) -> dict[str, dict]:
    path = ungradable_path(course, lab)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def record_ungradable(course: Course, lab: str, student: str, reason: str) -> float | None:
    """Give `student` 0 points for `lab` in the gradebook, with the reason; returns the previous score.

    A resubmission that cannot be graded must not leave the previous score standing. The old
    submission row (with its autograded and manual grades) is replaced by a fresh one in which
    every graded cell is scored 0 and every comment says why, so nbgrader's own views (formgrader,
    `nbgrader export`) and ours show 0 and the reason. The submission time and extension are
    kept; the old autograded notebook and feedback move to reports/<lab>/collect-history/.
    """
    from nbgrader.api import MissingEntry

    previous = None
    keep_aside(course, lab, student)  # the submission row goes: its hand grades are kept for a later answer
    # nbgrader's add_submission builds its rows under SQLAlchemy autoflush, which warns (harmlessly,
    # plain `nbgrader autograde` too) about objects not yet in the session.
    with course.open_gradebook() as gradebook:
        gradebook.update_or_create_student(student)
        kept: dict = {}
        try:
            old = gradebook.find_submission(lab, student)
            previous = max(0.0, float(old.score) - float(old.late_submission_penalty or 0))
            kept = {"timestamp": old.timestamp, "extension": old.extension}
            gradebook.remove_submission(lab, student)
        except MissingEntry:
            pass
        submission = gradebook.add_submission(lab, student, **{k: v for k, v in kept.items() if v is not None})
        note = f"Not graded: {reason}"[:1000]
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score, grade.manual_score, grade.needs_manual_grade = 0.0, None, False
            for comment in notebook.comments:
                comment.auto_comment = note
        gradebook.db.commit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    history = course.collect_history(lab) / student
    for kind, folder in (("autograded", course.autograded), ("feedback", course.feedback)):
        old_folder = folder / student / lab
        if old_folder.is_dir() and not old_folder.is_symlink():
            history.mkdir(parents=True, exist_ok=True)
            shutil.move(str(old_folder), history / f"{stamp}_{kind}")
    records = load_ungradable(course, lab)
    records[student] = {"reason": reason, "previous_score": previous,
                        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path = ungradable_path(course, lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    return previous


def clear_ungradable(course: Course, lab: str, student: str) -> None:
    """Forget an earlier 'could not be graded' once the student's notebook has been graded."""
    records = load_ungradable(course, lab)
    if records.pop(student, None) is not None:
        write_text(ungradable_path(course, lab), json.dumps(records, indent=1, ensure_ascii=False) + "\n")
