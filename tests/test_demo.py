"""The README's main command: the demo class grades as it should, end to end."""

from __future__ import annotations

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
