"""collect: LMS bulk downloads (Canvas, Moodle, folders) into nbgrader's submitted/ layout, safely and reported."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from gradekit.authoring.notebooks import markdown, write_notebook
from gradekit.commands import main as gradekit_main
from gradekit.course.directory import Course
from gradekit.intake import collect

LAB = "lab1"
NOTEBOOK = "lab1_logistic_regression"


def notebook_bytes(tag: str) -> bytes:
    """A small notebook whose content says which upload it is."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": tag}]}).encode()


pytestmark = pytest.mark.xdist_group("collect")  # module fixtures are built once, on one worker

@pytest.fixture
def course(tmp_path: Path) -> Course:
    root = tmp_path / "course"
    write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", [markdown("# Lab 1")], title=LAB)
    return Course(root)


@pytest.fixture
def released(course: Course) -> Course:
    """`collect` on the command line wants the lab released (its notebook name, stubs, the gradebook)."""
    import os
    import sys

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # nbgrader's alembic
    course.nbgrader("generate_assignment", LAB, "--force")
    return course


def make_zip(path: Path, entries: dict[str, bytes], dates: dict[str, tuple] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name, date_time=(dates or {}).get(name, (2024, 3, 1, 12, 0, 0)))
            archive.writestr(info, data)
    return path


def placed(course: Course, student: str) -> bytes:
    return (course.submitted / student / LAB / f"{NOTEBOOK}.ipynb").read_bytes()


def report_rows(course: Course) -> list[dict]:
    with (course.root / "reports" / LAB / "collect.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(("filename", "stem"), [
    ("Copy of lab1_logistic_regression.ipynb", NOTEBOOK),
    ("lab1_logistic_regression (2).ipynb", NOTEBOOK),
    ("lab1_logistic_regression-1.ipynb", NOTEBOOK),
    ("Copy of Copy of lab1_logistic_regression (1).ipynb", NOTEBOOK),
    ("lab1.ipynb", "lab1"),
])
def test_notebook_names_are_normalised(filename, stem):
    assert collect.normalise_stem(filename) == stem


def test_canvas_zip_is_placed_with_newest_upload_and_late_flag(released, tmp_path, capsys):
    course = released
    download = make_zip(tmp_path / "submissions.zip", {
        "smithjane_12345_67890_lab1_logistic_regression.ipynb": notebook_bytes("jane first"),
        "smithjane_12345_67891_lab1_logistic_regression-1.ipynb": notebook_bytes("jane second"),
        "doejohn_late_22222_77777_Copy of lab1_logistic_regression.ipynb": notebook_bytes("john"),
        "leeann_33333_88888_lab1_logistic_regression (2).ipynb": notebook_bytes("ann"),
        "leeann_33333_88889_notes.txt": b"my notes",
        "__MACOSX/._smithjane_12345_67890_lab1_logistic_regression.ipynb": b"\x00junk",
        "random_notebook.ipynb": notebook_bytes("who?"),
    }, dates={"smithjane_12345_67891_lab1_logistic_regression-1.ipynb": (2024, 3, 2, 9, 0, 0)})
    assert gradekit_main(["collect", LAB, str(download), "--course", str(course.root)]) == 0
    assert placed(course, "12345") == notebook_bytes("jane second")  # Canvas user id, not the name
    assert placed(course, "22222") == notebook_bytes("john")
    assert placed(course, "33333") == notebook_bytes("ann")
    assert sorted(p.name for p in course.submitted.iterdir()) == ["12345", "22222", "33333"]
    rows = {row["source"]: row for row in report_rows(course)}
    assert rows["doejohn_late_22222_77777_Copy of lab1_logistic_regression.ipynb"]["late"] == "yes"
    older = rows["smithjane_12345_67890_lab1_logistic_regression.ipynb"]
    assert older["action"] == "not placed" and "used smithjane_12345_67891" in older["notes"]
    assert rows["leeann_33333_88889_notes.txt"]["action"] == "not placed"
    assert rows["random_notebook.ipynb"]["action"] == "not placed"
    out = capsys.readouterr().out
    assert "Could not place 3 file(s)" in out and "random_notebook.ipynb" in out


def test_moodle_folders_and_single_oddly_named_notebook(course, tmp_path):
    download = make_zip(tmp_path / "moodle.zip", {
        "Zoë Müller_12345_assignsubmission_file_/homework.ipynb": notebook_bytes("zoe"),
        "Bob Stone_23456_assignsubmission_file_/Copy of lab1_logistic_regression.ipynb": notebook_bytes("bob"),
        "Bob Stone_23456_assignsubmission_file_/data.csv": b"1,2\n",
    })
    collect.collect(course, LAB, download)
    assert placed(course, "12345") == notebook_bytes("zoe")  # Moodle participant ids
    assert placed(course, "23456") == notebook_bytes("bob")
    rows = {row["source"]: row for row in report_rows(course)}
    assert "only notebook" in rows["Zoë Müller_12345_assignsubmission_file_/homework.ipynb"]["notes"]


def test_folder_of_student_folders(course, tmp_path):
    folder = tmp_path / "download"
    (folder / "alice").mkdir(parents=True)
    (folder / "alice" / "lab1_logistic_regression (1).ipynb").write_bytes(notebook_bytes("alice"))
    (folder / "loose.ipynb").write_bytes(notebook_bytes("loose"))
    files, skipped = collect.collect(course, LAB, folder)
    assert placed(course, "alice") == notebook_bytes("alice")
    assert [f.source for f in files if f.action == "not placed"] == ["loose.ipynb"]


def test_newer_upload_replaces_older_does_not_unless_replace(course, tmp_path):
    first = make_zip(tmp_path / "a.zip", {"kim_1_2_lab1_logistic_regression.ipynb": notebook_bytes("v1")})
    second = make_zip(tmp_path / "b.zip", {"kim_1_3_lab1_logistic_regression.ipynb": notebook_bytes("v2")})
    collect.collect(course, LAB, second)
    files, _ = collect.collect(course, LAB, first)  # attachment 2 < 3: an older upload
    assert placed(course, "1") == notebook_bytes("v2")
    assert files[0].action == "kept existing" and "--replace" in files[0].notes[-1]
    files, _ = collect.collect(course, LAB, second)
    assert files[0].action == "unchanged"
    files, _ = collect.collect(course, LAB, first, replace=True)
    assert placed(course, "1") == notebook_bytes("v1") and files[0].action == "replaced"
    history = list((course.root / "reports" / LAB / "collect-history" / "1").iterdir())
    assert [p.read_bytes() for p in history] == [notebook_bytes("v2")]  # nothing lost


def test_zip_traversal_and_oversized_entries_are_refused(course, tmp_path, monkeypatch):
    download = tmp_path / "evil.zip"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../escape_1_2_lab1_logistic_regression.ipynb", notebook_bytes("escape"))
        archive.writestr("/abs_1_2_lab1_logistic_regression.ipynb", notebook_bytes("abs"))
        archive.writestr("bomb_1_2_lab1_logistic_regression.ipynb", b" " * 5_000_000)
        archive.writestr("fine_1_2_lab1_logistic_regression.ipynb", notebook_bytes("fine"))
    monkeypatch.setattr(collect, "MAX_ENTRY_BYTES", 1_000_000)
    files, skipped = collect.collect(course, LAB, download)
    reasons = dict(skipped)
    assert "unsafe path" in reasons["../../escape_1_2_lab1_logistic_regression.ipynb"]
    assert "unsafe path" in reasons["/abs_1_2_lab1_logistic_regression.ipynb"]
    assert "too large" in reasons["bomb_1_2_lab1_logistic_regression.ipynb"]
    assert placed(course, "1") == notebook_bytes("fine")
    everything = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.ipynb")}
    assert not any("escape" in p or "abs" in p for p in everything)
    shutil.rmtree(course.submitted)
