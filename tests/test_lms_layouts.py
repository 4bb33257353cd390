"""collect with realistic LMS bulk downloads: every student under their LMS id, none merged or dropped."""

from __future__ import annotations

import csv
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from nbgrader.utils import parse_utc

from gradekit.authoring.notebooks import answer, markdown, write_notebook
from gradekit.course.directory import Course
from gradekit.course.roster import lms_student_id, read_roster
from gradekit.course.safe_text import is_safe_student_id
from gradekit.intake import collect
from gradekit.intake.layouts import gradescope_metadata

LAB = "lab1"
NOTEBOOK = "lab1_logistic_regression"
STUB = "def f():\n    # YOUR CODE HERE\n    raise NotImplementedError()"


def notebook_bytes(tag: str, answer_source: str = "def f():\n    return 1") -> bytes:
    """A notebook with one answer cell; `tag` says which upload it is."""
    cells = [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": tag},
             {"cell_type": "code", "id": "b", "metadata": {"nbgrader": {"solution": True, "grade_id": "f"}},
              "source": answer_source, "outputs": [], "execution_count": None}]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return lms_course(tmp_path)


def lms_course(tmp_path: Path) -> Course:
    """A released course with one lab whose answer cell is a stub (what collect compares uploads with)."""
    root = tmp_path / "course"
    write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", [markdown("# Lab 1")], title=LAB)
    release = [markdown("# Lab 1"), answer("f", STUB)]
    write_notebook(root / "release" / LAB / f"{NOTEBOOK}.ipynb", release, title=LAB)
    nb = nbformat.read(root / "release" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    # The release's answer cell as a student receives it: the stub, no solution markers.
    nb.cells[1].source = STUB
    nbformat.write(nb, root / "release" / LAB / f"{NOTEBOOK}.ipynb")
    return Course(root)


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2024, 3, 1, 12, 0, 0)), data)
    return path


def placed(course: Course) -> dict[str, str]:
    """student id -> the tag of the notebook placed for them."""
    return {p.parent.parent.name: json.loads(p.read_text())["cells"][0]["source"]
            for p in sorted(course.submitted.glob(f"*/{LAB}/{NOTEBOOK}.ipynb"))}


def report(course: Course) -> dict[str, dict]:
    with (course.root / "reports" / LAB / "collect.csv").open(encoding="utf-8") as handle:
        return {row["source"] + "|" + row["student"]: row for row in csv.DictReader(handle)}


def timestamp(course: Course, student: str) -> datetime | None:
    path = course.submitted / student / LAB / "timestamp.txt"
    return parse_utc(path.read_text().strip()) if path.exists() else None


def test_canvas_same_names_unicode_late_resubmissions_json_and_stubs(course, tmp_path):
    (course.root / "nbgrader_config.py").write_text('c = get_config()\nc.LateWork.duedates = {"lab1": '
                                                    '"2024-03-01 23:59:00 Europe/Paris"}\n')
    download = make_zip(tmp_path / "submissions.zip", {
        "smithjane_12345_67890_lab1_logistic_regression.ipynb": notebook_bytes("jane A"),
        "smithjane_54321_67891_lab1_logistic_regression.ipynb": notebook_bytes("jane B"),  # same name
        "müllerzoë_LATE_22222_77777_Copy of lab1_logistic_regression.ipynb": notebook_bytes("zoë"),
        "ngoclê_late_22223_77778_lab1_logistic_regression (2).ipynb": notebook_bytes("lê"),
        "张伟_33333_88888_lab1_logistic_regression.ipynb": notebook_bytes("张伟"),
        "doejohn_44444_90001_lab1_logistic_regression.ipynb": notebook_bytes("john first"),
        "doejohn_44444_90002_lab1_logistic_regression-1.ipynb": notebook_bytes("john second"),
        "leeann_55555_90003_lab1_logistic_regression.ipynb.json": notebook_bytes("ann json"),
        "kimbo_66666_90000_lab1_logistic_regression.ipynb": notebook_bytes("kim stub", STUB),
        "kimbo_66666_90004_Copy of lab1_logistic_regression.ipynb": notebook_bytes("kim finished"),
        "parkmin_77777_90005_lab1_logistic_regression.ipynb": notebook_bytes("min finished"),
        "parkmin_77777_90006_lab1_logistic_regression-1.ipynb": notebook_bytes("min stub", STUB),
        "leeann_55555_90007_notes.txt": b"notes",
        "random_notebook.ipynb": notebook_bytes("who?"),
    })
    collect.collect(course, LAB, download)
    assert placed(course) == {
        "12345": "jane A", "54321": "jane B", "22222": "zoë", "22223": "lê", "33333": "张伟",
        "44444": "john second", "55555": "ann json", "66666": "kim finished", "77777": "min finished"}
    rows = report(course)
    assert rows["张伟_33333_88888_lab1_logistic_regression.ipynb|33333"]["name"] == "张伟"
    # LATE (either case): just after the due date (23:59 Paris = 22:59 UTC); on time: no timestamp
    assert timestamp(course, "22222") == timestamp(course, "22223") == datetime(2024, 3, 1, 23, 0)
    assert timestamp(course, "12345") is None
    # the newer upload that is an unchanged stub loses to the finished one, and says so
    chosen = rows["parkmin_77777_90005_lab1_logistic_regression.ipynb|77777"]
    assert chosen["action"] == "placed" and "unchanged copies of the release" in chosen["notes"]
    stub = rows["parkmin_77777_90006_lab1_logistic_regression-1.ipynb|77777"]
    assert stub["action"] == "not placed" and "unchanged copy of the release" in stub["notes"]
    assert rows["random_notebook.ipynb|"]["action"] == "not placed"
    assert "not a notebook" in rows["leeann_55555_90007_notes.txt|55555"]["notes"]


def test_moodle_folders_flat_names_nested_and_same_names(course, tmp_path):
    download = make_zip(tmp_path / "moodle.zip", {
        "Lab 1-42/Zoë Müller_100_assignsubmission_file_/lab1.ipynb": notebook_bytes("zoë"),
        "Lab 1-42/Jane Smith_101_assignsubmission_file_/lab1_logistic_regression.ipynb": notebook_bytes("jane A"),
        "Lab 1-42/Jane Smith_102_assignsubmission_file_/Copy of lab1_logistic_regression.ipynb":
            notebook_bytes("jane B"),
        "Lab 1-42/王芳_103_assignsubmission_file_lab1_logistic_regression.ipynb": notebook_bytes("王芳"),
        "Lab 1-42/Bob Stone_104_assignsubmission_onlinetext_onlinetext.html": b"<p>hi</p>",
        "Lab 1-42/Ann Lee_105_assignsubmission_file_/work/deep/lab1_logistic_regression.ipynb":
            notebook_bytes("ann nested"),
    })
    collect.collect(course, LAB, download)
    assert placed(course) == {"100": "zoë", "101": "jane A", "102": "jane B", "103": "王芳", "105": "ann nested"}
    rows = report(course)
    assert rows["Lab 1-42/Bob Stone_104_assignsubmission_onlinetext_onlinetext.html|104"]["action"] == "not placed"


def test_blackboard_attempts_receipts_and_times(course, tmp_path):
    download = make_zip(tmp_path / "gradebook_lab1.zip", {
        "Lab 1_jsmith_attempt_2024-03-01-12-30-45_lab1_logistic_regression.ipynb": notebook_bytes("jsmith 1"),
        "Lab 1_jsmith_attempt_2024-03-01-12-30-45.txt": b"Name: Jane Smith (jsmith)\nAssignment: Lab 1\n",
        "Lab 1_jsmith_attempt_2024-03-02-09-00-00_lab1_logistic_regression.ipynb": notebook_bytes("jsmith 2"),
        "Lab 1_jsmith_attempt_2024-03-02-09-00-00.txt": b"Name: Jane Smith (jsmith)\n",
        "Lab 1_jsmith2_attempt_2024-03-01-10-00-00_lab1.ipynb": notebook_bytes("other jane"),
        "Lab 1_jsmith2_attempt_2024-03-01-10-00-00.txt": b"Name: Jane Smith (jsmith2)\n",
        # a user name with '_': only the receipt says where it starts
        "Lab_1_j_doe_attempt_2024-03-02-08-00-00_Copy of lab1_logistic_regression.ipynb": notebook_bytes("jdoe"),
        "Lab_1_j_doe_attempt_2024-03-02-08-00-00.txt": "Name: Jöhn Doe (j_doe)\n".encode(),
    })
    collect.collect(course, LAB, download, timezone="America/New_York")
    assert placed(course) == {"jsmith": "jsmith 2", "jsmith2": "other jane", "j_doe": "jdoe"}
    assert timestamp(course, "jsmith") == datetime(2024, 3, 2, 14, 0)  # 09:00 EST
    assert report(course)["Lab_1_j_doe_attempt_2024-03-02-08-00-00_Copy of lab1_logistic_regression.ipynb"
                          "|j_doe"]["name"] == "Jöhn Doe"


GRADESCOPE_METADATA = """\
submission_11:
  :submitters:
  - :name: Jane Smith
    :sid: '12345'
    :email: jane@example.edu
  :created_at: 2024-03-01 12:30:45.123456000 -08:00
  :score: 10.0
submission_12:
  :submitters:
  - :name: Jane Smith
    :sid: ''
    :email: jane.smith@example.edu
  - :name: 李雷
    :sid: A7
    :email: lilei@example.edu
  :created_at: !ruby/object:ActiveSupport::TimeWithZone 2024-03-02 10:00:00.000000000 +00:00
submission_13:
  :submitters: []
  :created_at: 2024-03-02 10:00:00.000000000 +00:00
"""


def test_gradescope_export_is_one_student_per_submitter(course, tmp_path):
    download = make_zip(tmp_path / "export.zip", {
        "assignment_9_export/submission_metadata.yml": GRADESCOPE_METADATA.encode(),
        "assignment_9_export/submission_11/lab1_logistic_regression.ipynb": notebook_bytes("jane A"),
        "assignment_9_export/submission_12/work/lab1_logistic_regression.ipynb": notebook_bytes("group"),
        "assignment_9_export/submission_13/lab1_logistic_regression.ipynb": notebook_bytes("nobody"),
        "assignment_9_export/submission_14/lab1_logistic_regression.ipynb": notebook_bytes("unknown"),
    })
    collect.collect(course, LAB, download)
    assert placed(course) == {"12345": "jane A", "jane.smith@example.edu": "group", "A7": "group"}
    assert timestamp(course, "12345") == datetime(2024, 3, 1, 20, 30, 45, 123456)
    rows = report(course)
    assert "no submitter" in rows["assignment_9_export/submission_13/lab1_logistic_regression.ipynb|"]["notes"]
    assert "not in submission_metadata" in \
        rows["assignment_9_export/submission_14/lab1_logistic_regression.ipynb|"]["notes"]


def test_gradescope_metadata_with_aliases_is_refused():
    bomb = b"a: &a [x, x]\nb: &b [*a, *a]\nsubmission_1: {':submitters': [*b]}\n"
    with pytest.raises(ValueError, match="aliases"):
        gradescope_metadata(bomb)


def test_plain_folders_and_unusable_names(course, tmp_path):
    folder = tmp_path / "download"
    for path, tag in {"submitted/alice/lab1/lab1_logistic_regression.ipynb": "alice",
                      "bob/lab1_logistic_regression (1).ipynb": "bob",
                      "carol/lab2/lab2_x.ipynb": "wrong lab",
                      "bad name <b>/lab1.ipynb": "bad"}.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(notebook_bytes(tag))
    (course.root / "source" / "lab2").mkdir()
    (course.root / "source" / "lab2" / "lab2_x.ipynb").write_bytes(notebook_bytes("lab2"))
    collect.collect(course, LAB, folder)
    assert placed(course) == {"alice": "alice", "bob": "bob"}
    rows = report(course)
    assert "not a student id" in rows["bad name <b>/lab1.ipynb|"]["notes"]
    assert "another lab" in rows["carol/lab2/lab2_x.ipynb|"]["notes"]


def test_student_ids_are_never_empty_and_always_safe():
    for user in ("12345", "j_doe", "jane.smith@example.edu", "张伟", "a b/c", "<script>"):
        student = lms_student_id(user)
        assert student and is_safe_student_id(student)
    assert lms_student_id("12345") == "12345" and lms_student_id("张伟") != lms_student_id("王芳")
    assert lms_student_id("  ") is None


def test_roster_names_students_and_lists_who_did_not_submit(course, tmp_path):
    roster = tmp_path / "gradebook.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (4242),Current Score\n'
                      '    Points Possible,,,,,45,\n'
                      '"Smith, Jane",12345,S001,jsmith,Sec A,,\n'
                      '"Smith, Jane",54321,S002,jsmith2,Sec B,,\n'
                      '"Zhang, Wei 张伟",33333,S003,wzhang,Sec A,,\n', encoding="utf-8")
    parsed = read_roster(roster)
    assert parsed.kind == "canvas" and sorted(parsed.students) == ["12345", "33333", "54321"]
    assert parsed.columns == {"Lab 1 (4242)": "4242"}
    download = make_zip(tmp_path / "d.zip", {"smithjane_12345_1_lab1_logistic_regression.ipynb": notebook_bytes("j")})
    collect.collect(course, LAB, download, roster=roster)
    state = json.loads((course.root / "reports" / LAB / "lms.json").read_text())
    assert state["12345"]["name"] == "Smith, Jane" and state["12345"]["sis_id"] == "S001"


def test_every_run_is_logged_and_replaced_files_are_kept(course, tmp_path):
    first = make_zip(tmp_path / "a.zip", {"kim_1_10_lab1_logistic_regression.ipynb": notebook_bytes("v1")})
    second = make_zip(tmp_path / "b.zip", {"kim_1_11_lab1_logistic_regression.ipynb": notebook_bytes("v2")})
    collect.collect(course, LAB, first)
    collect.collect(course, LAB, second)
    assert placed(course) == {"1": "v2"}
    with (course.root / "reports" / LAB / "collect-log.csv").open() as handle:
        log = list(csv.DictReader(handle))
    assert [(row["download"], row["action"]) for row in log] == [("a.zip", "placed"), ("b.zip", "replaced")]
    kept = list((course.root / "reports" / LAB / "collect-history" / "1").glob("*.ipynb"))
    assert [json.loads(p.read_text())["cells"][0]["source"] for p in kept] == ["v1"]
    assert datetime.now(UTC).year >= 2024
