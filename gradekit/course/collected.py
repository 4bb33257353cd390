"""What `collect` placed for each student of a lab (reports/<lab>/lms.json): the LMS identity, the source
file, its sha256, the submission time and lateness. `gradekit.intake` writes it; delivery reads it."""

from __future__ import annotations

import json
from pathlib import Path

from gradekit.course.directory import Course


def state_path(course: Course, lab: str) -> Path:
    return course.collected_file(lab)


def load_state(course: Course, lab: str) -> dict:
    """student -> what was collected for them (identity, source, hash, time, late)."""
    path = state_path(course, lab)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
