"""The README's main command: the demo class grades as it should, end to end."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from gradekit.course.directory import REPO_ROOT


@pytest.mark.slow
def test_demo_grades_the_demo_class_end_to_end(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gradekit", "demo", "--course", str(tmp_path / "demo"),
                             "--no-release"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo ok" in result.stdout
    for name in ("reports/index.html", "reports/grades.csv"):
        assert (tmp_path / "demo" / name).stat().st_size > 0
    assert list((tmp_path / "demo" / "feedback").glob("*/lab1/*.html"))
    # lab2 comes from a Moodle 4.1+ download with its worksheet: participants, grades at Moodle's scale.
    moodle_students = sorted(p.parent.name for p in (tmp_path / "demo" / "submitted").glob("*/lab2"))
    assert moodle_students == sorted(f"{name}@example.edu" for name in ("ada", "blank", "bob", "cora", "dan", "eve"))
    assert "moodle: lab2: points out of 36 -> out of 10" in result.stdout
    with (tmp_path / "demo" / "reports" / "lms" / "moodle-lab2.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and all(row["Maximum Grade"] == "10.00" for row in rows)
    assert max(float(row["Grade"]) for row in rows) <= 10.0 < 32.0
    assert "canvas: lab1: points out of 45 -> out of 10 (e.g. 40/45 -> 8.89/10" in result.stdout  # Points Possible
    assert "canvas: lab2 left out" in result.stdout  # the Canvas export has no lab2 column: never a new assignment
