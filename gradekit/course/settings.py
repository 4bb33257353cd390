"""course.toml: the course's settings that are not nbgrader's (nbgrader's live in nbgrader_config.py).

    [publish]                 # the public student repository (gradekit.authoring.publish)
    repository = "owner/name"
    [lms.points]              # each lab's points in the LMS (Canvas points possible, Moodle maximum grade)
    lab1 = 10
    [lms.canvas]              # each lab's Canvas assignment id (the `(id)` of its gradebook column)
    lab1 = 4242
    [similarity]              # `gradekit similarity` (gradekit.delivery.similarity)
    threshold = 0.8           # a pair of students is flagged from this score (0 < threshold <= 1)
    [runtime]                 # the environment the sandbox kernel runs in (gradekit.sandbox.runtime)
    pins = "runtimes/colab.txt"   # a pins file (course folder, else the kit's), or "grader"
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

from gradekit.course.exits import UsageError

SETTINGS_FILE = "course.toml"
DEFAULT_SIMILARITY_THRESHOLD = 0.8
DEFAULT_RUNTIME_PINS = "runtimes/colab.txt"  # students work on Colab: by default they are graded in its runtime


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


def similarity_threshold(root: Path) -> float:
    """The score from which `gradekit similarity` flags a pair, from `[similarity] threshold` (default 0.8)."""
    table = read_settings(root).get("similarity", {})
    if not isinstance(table, dict):
        raise UsageError(f"{SETTINGS_FILE}: similarity = {table!r}: a table ([similarity] threshold = 0.8)")
    value = table.get("threshold", DEFAULT_SIMILARITY_THRESHOLD)
    # NaN fails the comparison, so it is refused with the rest.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise UsageError(f"{SETTINGS_FILE}: [similarity] threshold = {value!r}: a share above 0 and at most 1")
    return float(value)


def runtime_pins(root: Path) -> str:
    """The kernel runtime's pins file (a path relative to the course, else to the kit), or "grader", from
    `[runtime] pins` (default: Colab's, `runtimes/colab.txt`)."""
    table = read_settings(root).get("runtime", {})
    if not isinstance(table, dict):
        raise UsageError(f"{SETTINGS_FILE}: runtime = {table!r}: a table ([runtime] pins = \"runtimes/colab.txt\")")
    value = table.get("pins", DEFAULT_RUNTIME_PINS)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{SETTINGS_FILE}: [runtime] pins = {value!r}: a pins file (runtimes/colab.txt) or \"grader\"")
    return value.strip()
