"""course.toml: the course's settings that are not nbgrader's (nbgrader's live in nbgrader_config.py).

    [publish]                 # the public student repository (gradekit.authoring.publish)
    repository = "owner/name"
    [lms.points]              # each lab's points in the LMS (Canvas points possible, Moodle maximum grade)
    lab1 = 10
    [lms.canvas]              # each lab's Canvas assignment id (the `(id)` of its gradebook column)
    lab1 = 4242
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from gradekit.course.exits import UsageError

SETTINGS_FILE = "course.toml"


def read_settings(root: Path) -> dict[str, Any]:
    """The whole course.toml ({} without one); a file that is not TOML is a usage error."""
    path = Path(root) / SETTINGS_FILE
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not valid TOML ({error})") from None


def lms_points(root: Path) -> dict[str, float]:
    """lab -> its points in the LMS, from `[lms.points]`."""
    table = read_settings(root).get("lms", {}).get("points", {})
    points = {}
    for lab, value in table.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
            raise UsageError(f"{SETTINGS_FILE}: [lms.points] {lab} = {value!r}: a number of points above 0")
        points[str(lab)] = float(value)
    return points


def canvas_assignments(root: Path) -> dict[str, str]:
    """lab -> its Canvas assignment id, from `[lms.canvas]`."""
    table = read_settings(root).get("lms", {}).get("canvas", {})
    ids = {}
    for lab, value in table.items():
        if isinstance(value, bool) or not str(value).isdigit():
            raise UsageError(f"{SETTINGS_FILE}: [lms.canvas] {lab} = {value!r}: a Canvas assignment id (digits)")
        ids[str(lab)] = str(value)
    return ids
