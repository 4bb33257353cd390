"""A course of its own (`gradekit init DIR`, then every command with `--course DIR`): nothing of it is written
into the kit, and nothing of the kit's own course into it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradekit.course.directory import REPO_ROOT
from gradekit.course.exits import EXIT_OK, EXIT_USAGE

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def gradekit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradekit", *args], capture_output=True, text=True, timeout=600,
                          env=ENV)


def kit_state() -> dict[str, float]:
    """What a command run against another course must not touch in the kit."""
    paths = [REPO_ROOT / "gradebook.db", *REPO_ROOT.glob("release/*/*.ipynb"), *REPO_ROOT.glob("source/*/*.ipynb")]
    return {str(p): p.stat().st_mtime_ns for p in paths if p.exists()}


@pytest.mark.slow
def test_init_then_release_a_course_kept_apart_from_the_kit(tmp_path):
    before = kit_state()
    course = tmp_path / "fall-course"
    done = gradekit("init", str(course), "--labs", "lab1", "--repository", "fall-org/fall-labs")
    assert done.returncode == EXIT_OK, done.stderr
    assert sorted(p.name for p in course.iterdir()) == ["course.toml", "nbgrader_config.py", "source"]
    assert 'repository = "fall-org/fall-labs"' in (course / "course.toml").read_text()
    done = gradekit("release", "--course", str(course))
    assert done.returncode == EXIT_OK, done.stderr
    assert (course / "gradebook.db").is_file() and list((course / "release" / "lab1").glob("*.ipynb"))
    assert "fall-org/fall-labs" in next((course / "release" / "lab1").glob("*.ipynb")).read_text()
    done = gradekit("report", "--course", str(course))
    assert done.returncode == EXIT_OK and str(course / "reports") in done.stdout, done.stderr
    assert kit_state() == before


def test_init_refuses_a_folder_in_use_and_an_unknown_lab(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    done = gradekit("init", str(used))
    assert done.returncode == EXIT_USAGE and "not empty" in done.stderr
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    done = gradekit("init", str(tmp_path / "new"), "--labs", "lab9")
    assert done.returncode == EXIT_USAGE and "no lab lab9" in done.stderr
    assert not Path(tmp_path / "new").exists()
