"""The instructor's commands, run as an instructor runs them (`python -m gradekit <cmd>`), asked for what
cannot work: an unknown lab, no gradebook, a damaged download, a bad option.

Each must say so in one line on stderr and exit 2 (gradekit.course.exits.EXIT_USAGE), print no traceback, and
leave the course exactly as it was (every file and folder, the gradebook included, hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from submissions.tiny_lab import LAB, NOTEBOOK, build_tiny_course

from gradekit.course.directory import REPO_ROOT, Course

pytestmark = pytest.mark.xdist_group("commands")  # the module's course is built once, on one worker


def tree_hash(root: Path) -> str:
    """Every path under `root` (folders too: an empty folder made by a refused run counts) and every file's bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def run(*args: str, module: str = "gradekit") -> subprocess.CompletedProcess:
    # From a neutral folder, so that nothing resolves against the repository by accident.
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=Path("/"),
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)


def notebook_bytes() -> bytes:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": "x" * 300}]}).encode()


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, Path]:
    """A released course (its gradebook knows the lab, nothing collected yet), a folder that is no course
    yet (no gradebook), and downloads good and damaged."""
    root = tmp_path_factory.mktemp("commands")
    course = build_tiny_course(root / "course")
    empty = root / "empty"
    empty.mkdir()
    downloads = root / "downloads"
    downloads.mkdir()
    name = f"smithjane_12345_67890_{NOTEBOOK}.ipynb"
    good = downloads / "good.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as archive:  # stored: the bytes are in the file as is
        archive.writestr(name, notebook_bytes())
        archive.writestr(f"leeann_33333_88888_{NOTEBOOK}.ipynb", notebook_bytes().replace(b"x", b"y"))
    data = good.read_bytes()
    crc = bytearray(data)
    at = data.index(b"x" * 300) + 150
    crc[at] = ord("z")  # one byte of the first notebook changed: its CRC-32 no longer matches
    (downloads / "crc.zip").write_bytes(bytes(crc))
    (downloads / "truncated.zip").write_bytes(data[: len(data) // 2])  # an interrupted download
    (downloads / "notazip.zip").write_bytes(b"<html>Your session has expired</html>\n")
    (downloads / "empty.zip").write_bytes(b"")
    (downloads / "roster.csv").write_text("nothing,a,roster,knows\n")
    return {"course": course.root, "empty": empty, "downloads": downloads}


# (command line with {course}, {empty}, {downloads} filled in, what the one line must say)
REFUSED = {
    "collect: unknown lab": (["collect", "nolab", "{downloads}/good.zip", "--course", "{course}"],
                             "unknown lab 'nolab'"),
    "collect: no course": (["collect", LAB, "{downloads}/good.zip", "--course", "{empty}/nowhere"], "no such folder"),
    "collect: no gradebook, no lab": (["collect", LAB, "{downloads}/good.zip", "--course", "{empty}"],
                                      f"unknown lab '{LAB}'"),
    "collect: no download": (["collect", LAB, "{downloads}/missing.zip", "--course", "{course}"],
                             "no such file or folder"),
    "collect: CRC error": (["collect", LAB, "{downloads}/crc.zip", "--course", "{course}"],
                           "damaged zip (Bad CRC-32"),
    "collect: truncated zip": (["collect", LAB, "{downloads}/truncated.zip", "--course", "{course}"],
                               "truncated zip"),
    "collect: not a zip": (["collect", LAB, "{downloads}/notazip.zip", "--course", "{course}"],
                           "not a zip file nor a folder"),
    "collect: empty file": (["collect", LAB, "{downloads}/empty.zip", "--course", "{course}"], "empty file (0 bytes)"),
    "collect: bad time zone": (["collect", LAB, "{downloads}/good.zip", "--course", "{course}", "--timezone",
                                "Mars/Olympus"], "unknown time zone"),
    "collect: unreadable roster": (["collect", LAB, "{downloads}/good.zip", "--course", "{course}", "--roster",
                                    "{downloads}/roster.csv"], "--roster: "),
    "report: unknown lab": (["report", "nolab", "--course", "{course}"], "unknown lab 'nolab'"),
    "report: no gradebook": (["report", "--course", "{empty}"], "no gradebook in"),
    "feedback: unknown lab": (["feedback", "nolab", "--course", "{course}"], "unknown lab 'nolab'"),
    "feedback: no gradebook": (["feedback", LAB, "--course", "{empty}"], "no gradebook in"),
    "feedback: unknown student": (["feedback", LAB, "--course", "{course}", "--student", "ghost"],
                                  "--student: no graded or ungradable"),
    "lms grades: unknown lab": (["lms", "grades", "nolab", "--course", "{course}"], "unknown lab 'nolab'"),
    "lms grades: no gradebook": (["lms", "grades", "--course", "{empty}"], "no gradebook in"),
    "lms grades: bad --column": (["lms", "grades", "--course", "{course}", "--column", "lab1"],
                                 "--column 'lab1': expected LAB=HEADER"),
    "lms feedback: unknown lab": (["lms", "feedback", "nolab", "--course", "{course}"], "unknown lab 'nolab'"),
    "lms dates: unknown lab": (["lms", "dates", "nolab", "--course", "{course}"], "unknown lab 'nolab'"),
}


@pytest.fixture(scope="module")
def refusals(place, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, dict, dict, list[str]]]:
    """Every refused command line, each on its own copy of the courses (so that a write is pinned on the case
    that made it), two at a time (each run is mostly interpreter and nbgrader start-up)."""
    root = tmp_path_factory.mktemp("refusals")

    def one(index: int, case: str):
        places = {"downloads": place["downloads"]}
        for key in ("course", "empty"):
            places[key] = root / str(index) / key
            shutil.copytree(place[key], places[key])
        arguments = [a.format(**{k: str(v) for k, v in places.items()}) for a in REFUSED[case][0]]
        before = {key: tree_hash(places[key]) for key in ("course", "empty")}
        result = run(*arguments)
        return case, (result, before, {key: tree_hash(places[key]) for key in ("course", "empty")}, arguments)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(lambda item: one(*item), enumerate(REFUSED)))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_in_one_line_with_exit_2_and_nothing_written(refusals, case):
    result, before, after, arguments = refusals[case]
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (case, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"gradekit {arguments[0]}: error: "), result.stderr
    assert REFUSED[case][1] in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout and result.stdout == ""
    assert after == before, f"{case} changed the course"


@pytest.mark.slow
def test_python_m_gradekit_lms_reports_errors_the_same_way(place):
    result = run("dates", "nolab", "--course", str(place["course"]), module="gradekit.lms")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()] and "unknown lab 'nolab'" in result.stderr


@pytest.mark.slow
def test_a_sound_download_is_collected_and_the_hash_sees_it(place, tmp_path):
    """The control: the same course and download, nothing wrong, is collected (exit 0) and changes the tree,
    so an unchanged hash above means nothing was written."""
    course = Course(tmp_path / "course")
    shutil.copytree(place["course"], course.root)
    before = tree_hash(course.root)
    result = run("collect", LAB, str(place["downloads"] / "good.zip"), "--course", str(course.root))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in course.submitted.iterdir()) == ["12345", "33333"]
    assert tree_hash(course.root) != before
