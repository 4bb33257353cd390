"""The LMS round trip's pieces that need no grading: rosters, due dates, penalties, results, upload names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gradekit.course.roster import Identity, lms_number, read_roster
from gradekit.course.status import StudentStatus
from gradekit.delivery.lms_export import Scale, _lab_result, canvas_columns, feedback_name, merged_comment
from gradekit.scoring.late import PenaltyPerDay, _parse_due


def test_due_dates_with_zones_and_without():
    assert _parse_due("2026-03-06 23:59:00 Europe/Paris") == datetime(2026, 3, 6, 22, 59, tzinfo=UTC)
    assert _parse_due("2026-03-06T23:59:00+02:00") == datetime(2026, 3, 6, 21, 59, tzinfo=UTC)
    assert _parse_due("2026-03-06 23:59") == datetime(2026, 3, 6, 23, 59, tzinfo=UTC)


def test_penalty_per_started_day_is_capped_by_the_score():
    plugin = PenaltyPerDay(fraction_per_day=0.25, grace_minutes=10)
    assert plugin.late_submission_penalty("s", 8.0, 5 * 60) is None  # within the grace period
    assert plugin.late_submission_penalty("s", 8.0, 3600) == 2.0  # one started day
    assert plugin.late_submission_penalty("s", 8.0, 86400 + 1) == 4.0  # two
    assert plugin.late_submission_penalty("s", 8.0, 30 * 86400) == 8.0


@pytest.mark.parametrize(("submission", "status", "ungradable", "missing", "expected"), [
    (None, None, None, "zero", (0.0, "missing", "no submission")),
    (None, None, None, "blank", (None, "missing", "no submission")),
    ((3.0, 0.0, True, False), {"status": "invalid", "reason": "bad JSON"}, None, "zero",
     (0.0, "invalid", "could not be graded: bad JSON")),  # an old score in the gradebook does not count
    (None, None, {"reason": "bad JSON"}, "zero", (0.0, "invalid", "could not be graded: bad JSON")),
    ((3.0, 0.0, True, False), {"status": "graded"}, {"reason": "old"}, "zero", (3.0, "graded", "")),
    ((3.0, 1.0, True, True), {"status": "graded"}, None, "zero",
     (2.0, "graded", "late: 1 point(s) deducted; written answers not graded yet")),
    ((0.0, 0.0, False, True), None, None, "blank", (None, "not graded yet", "collected, not graded yet")),
])
def test_each_student_lab_result(submission, status, ungradable, missing, expected):
    entry = StudentStatus.from_dict({"student": "s1", **status}) if status is not None else None
    result = _lab_result(submission, entry, ungradable, missing)
    assert (result.score, result.status, result.reason) == expected


def test_upload_names_follow_each_lms():
    canvas = Identity("canvas", "12345", "Smith, Jane")
    moodle = Identity("moodle", "678", "Zoë_Müller")
    record = {"attachment": 90004}
    assert feedback_name("canvas", canvas, record, "lab1", "lab1_x", "12345") == \
        "smithjane_12345_90004_lab1-x-feedback.ipynb"  # Canvas shows it under the submitted .ipynb's name
    assert feedback_name("canvas", moodle, {}, "lab1", "lab1_x", "678") is None
    assert feedback_name("canvas", canvas, {}, "lab1", "lab1_x", "12345") is None  # no upload: nothing to attach to
    assert feedback_name("moodle", moodle, {}, "lab1", "lab1_x", "678") == \
        "Zoë Müller_678_assignsubmission_file_lab1_x_feedback.html"
    assert feedback_name("plain", canvas, {}, "lab1", "lab1_x", "12345") == "12345/lab1/lab1_x.html"


def test_moodle_worksheet_roster_and_canvas_columns(tmp_path):
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text("Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,"
                         "Last modified (submission),Last modified (grade),Feedback comments\n"
                         "Participant 678,Zoë Müller,zoe@x.edu,Submitted,,45.00,Yes,"
                         '"Friday, 1 March 2024, 12:30 PM",-,\n'
                         "Participant 679,王芳,wang@x.edu,No submission,,45.00,Yes,-,-,\n", encoding="utf-8")
    roster = read_roster(worksheet)
    # Students by e-mail (participant numbers belong to one assignment), each with this lab's number.
    assert roster.kind == "moodle" and sorted(roster.students) == ["wang@x.edu", "zoe@x.edu"]
    assert roster.students["wang@x.edu"].name == "王芳" and roster.students["zoe@x.edu"].user == "678"
    canvas = read_roster_from_text(tmp_path, "Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (42),Lab 2 (43)\n")
    # A lab without a column is left out: a header Canvas cannot match would create a new assignment.
    assert canvas_columns(["lab1", "lab2", "lab3"], canvas) == {"lab1": "Lab 1 (42)", "lab2": "Lab 2 (43)",
                                                                "lab3": None}
    assert canvas_columns(["lab3"], canvas, assignment_ids={"lab3": "43"}) == {"lab3": "Lab 2 (43)"}  # by id
    assert canvas_columns(["lab1"], canvas, {"lab1": "Week 1 (7)"}) == {"lab1": "Week 1 (7)"}


def read_roster_from_text(tmp_path, text: str):
    path = tmp_path / "canvas.csv"
    path.write_text(text, encoding="utf-8")
    return read_roster(path)


def test_grades_go_at_the_lms_scale_and_the_rule_is_stated():
    scale = Scale("lab1", nbgrader_max=45.0, lms_max=10.0, source="course.toml [lms.points]")
    assert scale.convert(40.0) == 8.89 and scale.convert(45.0) == 10.0 and scale.convert(None) is None
    assert "40/45 -> 8.89/10" in scale.rule
    unknown = Scale("lab1", 45.0, None, "no LMS maximum known")
    assert unknown.convert(40.0) == 40.0 and unknown.maximum == 45.0 and "[lms.points] lab1" in unknown.rule


def test_an_lms_comment_is_kept_and_ours_follows_it_once():
    assert merged_comment("Good start", "late: 1 point(s) deducted") == "Good start\nlate: 1 point(s) deducted"
    assert merged_comment("Good start\nlate: 1 point(s) deducted", "late: 1 point(s) deducted") == \
        "Good start\nlate: 1 point(s) deducted"  # a second export adds nothing
    assert merged_comment("Good start", "") == "Good start" and merged_comment("", "no submission") == "no submission"


def test_the_lms_maxima_are_read_from_its_own_files(tmp_path):
    canvas = read_roster_from_text(tmp_path, "Student,ID,SIS User ID,SIS Login ID,Section,Lab 1 (42),Current Score\n"
                                             "    Points Possible,,,,,\"10,00\",\n\"Smith, Jane\",101,S1,js,A,,\n")
    assert canvas.points == {"Lab 1 (42)": 10.0}  # a decimal comma, as Canvas's importer reads it
    worksheet = tmp_path / "worksheet.csv"
    worksheet.write_text("Identifier,Full name,Email address,Status,Grade,Maximum Grade,Grade can be changed,"
                         "Last modified (submission),Last modified (grade),Feedback comments\n"
                         "Participant 678,Zoë Müller,zoe@x.edu,Submitted,,45.00,Yes,-,-,\n", encoding="utf-8")
    assert read_roster(worksheet).points == {"": 45.0}
    assert lms_number("1,234.50") == 1234.5 and lms_number("n/a") is None
