"""The LMS round trip on a graded scratch course: downloads in, grade, Canvas/Moodle files and feedback out.

One course is graded twice (a module fixture): Canvas and Moodle downloads with same-name students,
Chinese and accented names, late work with and without an extension, and a resubmission that cannot
be graded. Everything out is parsed back and checked against nbgrader's gradebook, student by student.
"""

from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, SECRET_MARKER, build_tiny_course, submission
from lms_importers import GradeRecord, canvas_import, moodle_import
from nbgrader.api import Gradebook

from gradekit.course.status import Status, write_status
from gradekit.delivery.lms_export import export_feedback, export_grades
from gradekit.grading.progress import status_line
from gradekit.grading.run import grade_lab
from gradekit.intake import collect
from gradekit.sandbox.settings import Limits
from gradekit.scoring.ungradable import record_ungradable

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lms_roundtrip")]

FULL = "def double(x):\n    return 2 * x\n"
WRONG = "def double(x):\n    return x ** 2\n"  # passes the visible check, fails the hidden ones
ROSTER = ('Student,ID,SIS User ID,SIS Login ID,Section,Tiny (777),Current Score\n'
          '    Points Possible,,,,,3,\n'
          '"Smith, Jane",101,S101,jsmith,A,,\n'
          '"Smith, Jane",102,S102,jsmith2,B,,\n'
          '"Wang, Fang 王芳",103,S103,wfang,A,,\n'
          '"Müller, Zoë",104,S104,zmuller,B,,\n'
          '"Lee, Ann",105,S105,alee,A,,\n'
          '"=HYPERLINK(""http://x""), Eve",106,S106,eve,B,,\n')  # never submitted; a hostile name
# The Moodle assignment's worksheet (mod/assign/gradingtable.php, download mode), out of 10 in Moodle:
# 201 already has a grade and a comment from Moodle; 202 none; 203 never submitted.
WORKSHEET = ('Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,'
             'Last modified (submission),Last modified (grade),Feedback comments\n'
             'Participant 201,Wang Fang,wang@example.edu,Submitted for grading,5.00,10.00,Yes,'
             '"Friday, 1 March 2024, 10:00 AM","Friday, 1 March 2024, 12:00 PM",Good start\n'
             'Participant 202,Jane Smith,jane@example.edu,Submitted for grading,,10.00,Yes,'
             '"Friday, 1 March 2024, 11:00 AM",-,\n'
             'Participant 203,Ann Other,ann@example.edu,No submission,,10.00,Yes,-,-,\n')
MOODLE_MAXIMUM = 10.0


def notebook(course, answer: str) -> bytes:
    return nbformat.writes(submission(course, answer)).encode()


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def grade(course, students: list[str] | None = None) -> dict:
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=120), progress=io.StringIO(),
                    students=students)
    write_status(course, run.status_file(), partial=students is not None)
    for status in run.students:  # the call grade.py makes for Status.INVALID students (see gradekit.scoring.late)
        if status.status == Status.INVALID:
            record_ungradable(course, LAB, status.student, status.reason)
    return {s.student: s for s in run.students}


@pytest.fixture(scope="module")
def trip(tmp_path_factory):
    root = tmp_path_factory.mktemp("lms")
    course = build_tiny_course(root / "course")
    with (course.root / "nbgrader_config.py").open("a") as config:
        config.write('\nc.LateWork.duedates = {"tiny": "2024-03-01 23:59:00 UTC"}\n'
                     'c.LateWork.extensions = {"tiny": {"104": 48}}\n'
                     'c.LateSubmissionPlugin.penalty_method = "zero"\n')
    (root / "gradebook_export.csv").write_text(ROSTER, encoding="utf-8")
    (root / "worksheet.csv").write_text(WORKSHEET, encoding="utf-8")
    canvas = make_zip(root / "canvas.zip", {
        "smithjane_101_1001_tiny_double.ipynb": notebook(course, FULL),
        "smithjane_102_1002_tiny_double.ipynb": notebook(course, WRONG),
        "王芳_LATE_103_1003_tiny_double.ipynb": notebook(course, FULL),
        "müllerzoë_LATE_104_1004_Copy of tiny_double.ipynb": notebook(course, FULL),
        "leeann_105_1005_tiny_double.ipynb": notebook(course, FULL),
        "strangersam_107_1007_tiny_double.ipynb": notebook(course, FULL),  # not on the course's Canvas export
    })
    moodle = make_zip(root / "moodle.zip", {
        "Tiny-9/Wang Fang_201_assignsubmission_file_/tiny_double.ipynb": notebook(course, FULL),
        "Tiny-9/Jane Smith_202_assignsubmission_file_tiny_double (1).ipynb": notebook(course, WRONG),
    })
    collect.collect(course, LAB, canvas, roster=root / "gradebook_export.csv")
    collect.collect(course, LAB, moodle, roster=root / "worksheet.csv")  # keeps the Canvas roster too
    first = grade(course)
    with Gradebook(course.db_url) as gradebook:
        first_scores = {s.student.id: s.score for s in gradebook.assignment_submissions(LAB)}
    # Ann resubmits a broken notebook (a later Canvas upload): her 3 points must not survive.
    resubmitted = make_zip(root / "canvas2.zip", {"leeann_105_1006_tiny_double-1.ipynb": b'{"cells": [oops'})
    collect.collect(course, LAB, resubmitted)
    second = grade(course, ["105"])  # only the resubmission
    written = export_grades(course, [LAB], notes=(notes := []))
    written["notes"] = notes
    zips = export_feedback(course, LAB)
    return course, first, first_scores, second, written, zips


def gradebook_points(course) -> dict[str, float]:
    with Gradebook(course.db_url) as gradebook:
        return {s.student.id: max(0.0, s.score - (s.late_submission_penalty or 0))
                for s in gradebook.assignment_submissions(LAB)}


def read_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_student_graded_under_their_lms_id(trip):
    course, first, first_scores, *_ = trip
    # Moodle's participants are students by their e-mail (participant numbers belong to one assignment).
    assert sorted(first) == ["101", "102", "103", "104", "105", "107", "jane@example.edu", "wang@example.edu"]
    assert first_scores["101"] == first_scores["105"] == first_scores["wang@example.edu"] == 3.0
    assert first_scores["102"] == first_scores["jane@example.edu"] == 0.0  # the other Jane Smiths: their own notebooks
    with Gradebook(course.db_url) as gradebook:
        assert gradebook.find_student("103").first_name == "Fang 王芳"  # the roster's name, for the formgrader
        assert gradebook.find_student("103").lms_user_id == "103"


def test_late_work_gets_nbgrader_penalty_and_the_extension_removes_it(trip):
    course, *_ = trip
    with Gradebook(course.db_url) as gradebook:
        late = gradebook.find_submission(LAB, "103")
        extended = gradebook.find_submission(LAB, "104")
        assert late.total_seconds_late > 0 and late.late_submission_penalty == 3.0
        assert extended.extension is not None and extended.total_seconds_late == 0
        assert not extended.late_submission_penalty
    points = gradebook_points(course)
    assert points["103"] == 0.0 and points["104"] == 3.0


def test_the_late_penalty_is_on_the_status_line_and_the_students_page_as_the_lms_gets_it(trip):
    course, first, *_ = trip
    line = status_line(first["103"])
    assert " 0/3 " in line and "late: 3 point(s) deducted from 3" in line
    assert "late" not in status_line(first["104"])  # the extension: on time
    page = html.unescape(re.sub(r"<[^>]+>", "", (course.feedback / "103" / LAB / f"{NOTEBOOK}.html").read_text()))
    assert "Score: 0 / 3 (late: 3 point(s) deducted from 3)" in page
    summary = nbformat.read(course.feedback / "103" / LAB / f"{NOTEBOOK}.ipynb", as_version=4).cells[0].source
    assert "0 / 3" in summary and "Late: 3 point(s) deducted from 3" in summary


def test_invalid_resubmission_replaces_the_old_score_with_zero_and_the_reason(trip):
    course, first, first_scores, second, written, zips = trip
    assert first_scores["105"] == 3.0 and second["105"].status == Status.INVALID
    assert gradebook_points(course)["105"] == 0.0
    assert not (course.autograded / "105" / LAB).exists()  # the stale notebook moved to the history
    history = course.root / "reports" / LAB / "collect-history" / "105"
    assert any(p.suffix == ".ipynb" for p in history.iterdir())  # the old upload is kept
    rows = {row["student"]: row for row in read_csv(written["plain"])}
    assert rows["105"][f"{LAB} points"] == "0" and rows["105"][f"{LAB} status"] == "invalid"
    assert "could not be graded" in rows["105"][f"{LAB} reason"]
    with zipfile.ZipFile(zips["canvas"]) as archive:
        feedback = nbformat.reads(archive.read("leeann_105_1006_tiny-double-feedback.ipynb").decode(), as_version=4)
    text = "".join(cell.source for cell in feedback.cells)
    assert "could not be graded" in text and "0 / 3" in text


def test_canvas_and_moodle_files_match_the_gradebook_student_by_student(trip):
    course, *_, written, _ = trip
    points = gradebook_points(course)
    rows = read_csv(written["canvas"])
    assert list(rows[0])[:6] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Tiny (777)"]
    assert rows[0]["Student"] == "Points Possible" and rows[0]["Tiny (777)"] == "3"
    canvas = {row["ID"]: row for row in rows[1:]}
    assert sorted(canvas) == ["101", "102", "103", "104", "105", "106"]  # Moodle students are not Canvas users
    for student, row in canvas.items():
        expected = points.get(student, 0.0)  # 106 never submitted: 0
        assert float(row["Tiny (777)"]) == expected, student
    assert canvas["102"]["Student"] == "Smith, Jane" and canvas["102"]["SIS User ID"] == "S102"
    assert canvas["106"]["Student"].startswith("'=")  # a formula in a roster name stays text
    moodle = {row["Identifier"]: row for row in read_csv(written[f"moodle-{LAB}"])}
    assert sorted(moodle) == ["Participant 201", "Participant 202", "Participant 203"]
    emails = {"Participant 201": "wang@example.edu", "Participant 202": "jane@example.edu",
              "Participant 203": "ann@example.edu"}
    for identifier, row in moodle.items():  # at Moodle's scale (out of 10, not nbgrader's 3)
        assert float(row["Grade"]) == round(points.get(emails[identifier], 0.0) * MOODLE_MAXIMUM / 3, 2)
        assert row["Maximum Grade"] == "10.00"  # Moodle's own maximum, never rewritten
    plain = {row["student"]: row for row in read_csv(written["plain"])}
    assert plain["106"][f"{LAB} status"] == "missing" and plain["106"][f"{LAB} reason"] == "no submission"
    assert "late" in plain["103"][f"{LAB} reason"]


def test_feedback_zips_are_named_for_bulk_upload_and_hide_hidden_tests(trip):
    course, *_, zips = trip
    with zipfile.ZipFile(zips["canvas"]) as archive:
        names = archive.namelist()
        pages = [archive.read(name).decode() for name in names]
    assert len(names) == 6
    for name in names:  # Canvas reads the first all-digit '_' part as the user id, the second as the upload
        numbers = [part for part in name.split("_") if part.isdigit()]
        assert numbers[0] in {"101", "102", "103", "104", "105", "107"} and len(numbers) == 2, name
    with zipfile.ZipFile(zips["moodle"]) as archive:
        moodle_names = archive.namelist()
        pages += [archive.read(name).decode() for name in moodle_names]
    # Moodle's feedback-zip importer: explode('_', name, 5) -> name, participant id, plugin type, plugin, file
    assert sorted(name.split("_", 4)[:4][1] for name in moodle_names) == ["201", "202"]
    assert all(re.fullmatch(r"[^_]+_\d+_assignsubmission_file_.+\.html", name) for name in moodle_names)
    for page in pages:
        assert SECRET_MARKER not in page and "BEGIN HIDDEN TESTS" not in page.upper()
    # Canvas attaches each file under the name the student submitted (a .ipynb): each is a notebook, which
    # Colab opens: the student's cells, a verdict under each graded cell, the failure message where one failed.
    with zipfile.ZipFile(zips["canvas"]) as archive:
        wrong = nbformat.reads(archive.read("smithjane_102_1002_tiny-double-feedback.ipynb").decode(), as_version=4)
    nbformat.validate(wrong)
    verdicts = [cell.source for cell in wrong.cells if cell.metadata.get("gradekit", {}).get("feedback")]
    assert verdicts[0].startswith("# Feedback on tiny: 0 / 3") and "test_double" in verdicts[0]
    assert any(v.startswith("**Feedback: test_double**: 0 / 3") and "double" in v for v in verdicts[1:])
    assert any("return x ** 2" in cell.source for cell in wrong.cells if cell.cell_type == "code")


def test_nbgrader_generate_feedback_shows_no_hidden_test(trip):
    course, *_ = trip
    autograded = nbformat.read(course.autograded / "102" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    assert any(SECRET_MARKER in cell.source for cell in autograded.cells)  # what nbgrader would render
    course.nbgrader("generate_feedback", LAB, "--force")
    pages = sorted(course.feedback.glob(f"*/{LAB}/{NOTEBOOK}.html"))
    assert {p.parent.parent.name for p in pages} >= {"101", "102", "103", "104", "wang@example.edu",
                                                      "jane@example.edu"}
    for page in pages:
        markup = page.read_text(encoding="utf-8")
        text = html.unescape(re.sub(r"<[^>]+>", "", markup))  # nbgrader highlights code: tags split it
        assert SECRET_MARKER not in text and "BEGIN HIDDEN TESTS" not in text
        assert "Traceback (most recent call last)" not in text and "---->" not in text
    markup = (course.feedback / "102" / LAB / f"{NOTEBOOK}.html").read_text(encoding="utf-8")
    assert "CheckFailed: double" in html.unescape(re.sub(r"<[^>]+>", "", markup))  # the message is still there


def test_the_lms_files_pass_the_importers_own_rules(trip):
    """Read back as Canvas's gradebook_importer.rb and Moodle's offline-grading importer read them."""
    course, *_, written, _ = trip
    points = gradebook_points(course)
    canvas = canvas_import(written["canvas"].read_text(encoding="utf-8"), {"777": ("Tiny", 3.0)},
                           {"101", "102", "103", "104", "105", "106"})
    assert canvas.problems == [] and canvas.new_assignments == [] and canvas.unknown_students == []
    assert canvas.above_points_possible == []
    assert {user: value for (user, _), value in canvas.grades.items()} == {
        user: points.get(user, 0.0) for user in ("101", "102", "103", "104", "105", "106")}

    exported = datetime.fromtimestamp(written["moodle-tiny"].stat().st_mtime, UTC)
    records = {  # 201 graded in Moodle before the download; 202's record made by an earlier feedback upload
        "201": GradeRecord(5.0, datetime(2024, 3, 1, 12, 0, tzinfo=UTC), "Good start"),
        "202": GradeRecord(None, exported - timedelta(minutes=5)), "203": None}
    moodle = moodle_import(written["moodle-tiny"].read_text(encoding="utf-8"), MOODLE_MAXIMUM, records)
    assert moodle.problems == []
    assert moodle.grades == {"201": 10.0, "202": 0.0, "203": 0.0}  # none skipped, none above the maximum
    assert moodle.skipped == {}
    assert "201" not in moodle.comments  # Moodle's own comment stays: nothing of ours to add to it
    assert "no submission" in moodle.comments["203"]
    assert any("tiny: points out of 3 -> out of 10" in note for note in written["notes"])
    # 107 is not on the course's Canvas export: graded, but kept out of the file Canvas imports, and said so.
    assert "107" not in {user for user, _ in canvas.grades}
    assert any(note.startswith("canvas: 1 student(s) not on the Canvas export left out") and note.endswith(": 107")
               for note in written["notes"])
    preview = [note for note in written["notes"] if note.startswith(("canvas tiny:", "moodle tiny:"))]
    assert any(note.startswith("canvas tiny: 6 students:") and "not canvas users" in note for note in preview)
    assert any(note.startswith("moodle tiny: 3 students:") and "1 0 (missing or not gradable)" in note
               for note in preview), preview


def test_a_dry_run_prints_the_preview_and_writes_nothing(trip, tmp_path):
    course, *_ = trip
    notes: list[str] = []
    assert export_grades(course, [LAB], out=tmp_path / "out", notes=notes, dry_run=True) == {}
    assert not (tmp_path / "out").exists()
    assert any(note.startswith("canvas tiny: 6 students") for note in notes)
    assert any("points out of 3 -> out of 10" in note for note in notes)
