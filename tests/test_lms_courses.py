"""A Canvas course and a Moodle 4.x course, each with a group (team) lab and an individual lab, collected from
downloads named as the LMSs' code names them, graded, and exported; every file the kit writes is read back
by the importers' own rules (`lms_importers`, re-implemented from canvas-lms and moodle).

Canvas: lab `tiny` is a group assignment (one file per group under its representative:
`Assignment#representatives`; `grade_student` posts the grade to every member), `tiny2` individual.
Moodle: lab `tiny` is a team assignment (`<group name>_<group id>` once per team, the worksheet's Group column
says who is in it), `tiny2` individual, with other participant numbers for the same people
(`assign_user_mapping`): each person is one student across both labs.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, build_tiny_course, submission
from lms_importers import GradeRecord, canvas_feedback_import, canvas_import, moodle_feedback_import, moodle_import
from test_lms_sources import canvas_name, make_zip, moodle_path, moodle_prefix, moodle_team_prefix, moodle_worksheet

from gradekit.course.directory import Course
from gradekit.course.status import write_status
from gradekit.delivery.lms_export import export_feedback, export_grades
from gradekit.grading.run import grade_lab
from gradekit.intake import collect
from gradekit.sandbox.settings import Limits

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lms_courses")]

LAB2 = "tiny2"
RIGHT = "def double(x):\n    return 2 * x\n"
WRONG = "def double(x):\n    return x + 1\n"
LMS_POINTS = 10.0  # each assignment's points in the LMS; nbgrader's lab is out of 3


def two_lab_course(root: Path) -> Course:
    course = build_tiny_course(root)
    shutil.copytree(course.source / LAB, course.source / LAB2)
    done = course.nbgrader("generate_assignment", LAB2, "--force", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return course


def nb(course: Course, answer: str) -> bytes:
    return nbformat.writes(submission(course, answer)).encode()


def grade(course: Course, lab: str) -> None:
    run = grade_lab(course, lab, workers=2, limits=Limits(timeout=120), progress=io.StringIO())
    write_status(course, run.status_file())


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


# ---------------------------------------------------------------- Canvas


@pytest.fixture(scope="module")
def canvas(tmp_path_factory):
    root = tmp_path_factory.mktemp("canvas")
    course = two_lab_course(root / "course")
    (course.root / "course.toml").write_text('[lms.canvas]\ntiny = "777"\ntiny2 = "778"\n', encoding="utf-8")
    export = root / "export.csv"  # Gradebook > Export (lib/gradebook_exporter.rb): two assignments
    export.write_text("Student,ID,SIS User ID,SIS Login ID,Section,Tiny (777),Tiny 2 (778),Current Score\n"
                      "    Points Possible,,,,,10,10,\n"
                      '"Byron, Ada",301,S301,ada,A,,,\n"Turing, Alan",302,S302,alan,A,,,\n'
                      '"Hopper, Grace",303,S303,grace,B,,,\n"Knuth, Don",304,S304,don,B,,,\n', encoding="utf-8")
    groups = root / "groups.csv"  # the group set's export (doc/api/group_category_csv.md)
    groups.write_text("name,canvas_user_id,user_id,login_id,sections,group_name,canvas_group_id,group_id\n"
                      '"Byron, Ada",301,S301,ada,A,Group 1,77,\n"Turing, Alan",302,S302,alan,A,Group 1,77,\n'
                      '"Hopper, Grace",303,S303,grace,B,Group 2,78,\n', encoding="utf-8")
    group_lab = make_zip(root / "tiny.zip", {  # one file per group, under the member who submitted it
        canvas_name("Turing, Alan", 302, 9101, f"{NOTEBOOK}.ipynb"): nb(course, RIGHT),
        canvas_name("Hopper, Grace", 303, 9102, f"{NOTEBOOK}.ipynb"): nb(course, WRONG),
    })
    individual_lab = make_zip(root / "tiny2.zip", {
        canvas_name("Byron, Ada", 301, 9201, f"{NOTEBOOK}.ipynb"): nb(course, RIGHT),
        canvas_name("Turing, Alan", 302, 9202, f"{NOTEBOOK}.ipynb"): nb(course, WRONG),
    })
    collect.collect(course, LAB, group_lab, roster=export, groups=groups)
    collect.collect(course, LAB2, individual_lab)
    grade(course, LAB)
    grade(course, LAB2)
    written = export_grades(course, [LAB, LAB2], notes=(notes := []))
    return course, written, notes, {lab: export_feedback(course, lab) for lab in (LAB, LAB2)}


def test_canvas_group_and_individual_labs_import_as_canvas_reads_them(canvas):
    course, written, notes, _ = canvas
    imported = canvas_import(written["canvas"].read_text(encoding="utf-8"),
                             {"777": ("Tiny", LMS_POINTS), "778": ("Tiny 2", LMS_POINTS)},
                             {"301", "302", "303", "304"})
    assert imported.problems == [] and imported.new_assignments == [] and imported.unknown_students == []
    assert imported.above_points_possible == []
    # The group's grade for each member (Canvas would post it to all of them anyway: never a 0 that
    # races it); Grace's group of one; Don, in no group and with no file, 0. Scaled 3 -> 10.
    assert imported.grades == {("301", "777"): 10.0, ("302", "777"): 10.0, ("303", "777"): 0.0, ("304", "777"): 0.0,
                               ("301", "778"): 10.0, ("302", "778"): 0.0, ("303", "778"): 0.0, ("304", "778"): 0.0}
    assert any("tiny: points out of 3 -> out of 10" in note for note in notes)
    # Ada (301) is one student in both labs.
    assert sorted(p.name for p in course.submitted.glob("301/*")) == [LAB, LAB2]


def test_canvas_feedback_reaches_every_group_member_as_a_notebook(canvas):
    _, _, _, zips = canvas
    # Canvas gives each member of a group the group's submission, attachment included.
    attachments = {"301": {"9101", "9201"}, "302": {"9101", "9202"}, "303": {"9102"}}
    group = canvas_feedback_import(zip_names(zips[LAB]["canvas"]), attachments)
    assert "" not in group and sorted(group) == ["301", "302", "303"]
    assert all(name.endswith(".ipynb") for names in group.values() for name in names)
    individual = canvas_feedback_import(zip_names(zips[LAB2]["canvas"]), attachments)
    assert "" not in individual and sorted(individual) == ["301", "302"]


# ---------------------------------------------------------------- Moodle


@pytest.fixture(scope="module")
def moodle(tmp_path_factory):
    root = tmp_path_factory.mktemp("moodle")
    course = two_lab_course(root / "course")
    team_sheet = moodle_worksheet(root / "tiny.csv", [  # mod/assign/gradingtable.php, a team assignment
        (101, "Ada Byron", "ada@example.edu", "Team A"), (102, "Alan Turing", "alan@example.edu", "Team A"),
        (17, "Grace Hopper", "grace@example.edu", "Team B"), (18, "Don Knuth", "don@example.edu", "")], team=True)
    sheet2 = moodle_worksheet(root / "tiny2.csv", [  # the same people, numbered by the other assignment
        (555, "Ada Byron", "ada@example.edu", ""), (101, "Alan Turing", "alan@example.edu", ""),
        (556, "Grace Hopper", "grace@example.edu", ""), (557, "Don Knuth", "don@example.edu", "")])
    team_lab = make_zip(root / "tiny.zip", {  # downloader.php: once per team; group 17 is also a participant
        moodle_path(moodle_team_prefix("Team A", 17), f"{NOTEBOOK}.ipynb", "folders"): nb(course, RIGHT),
        moodle_path(moodle_team_prefix("Team B", 40), f"{NOTEBOOK}.ipynb", "folders"): nb(course, WRONG),
    })
    individual_lab = make_zip(root / "tiny2.zip", {
        moodle_path(moodle_prefix("Ada Byron", 555), f"{NOTEBOOK}.ipynb", "folders"): nb(course, RIGHT),
        moodle_path(moodle_prefix("Alan Turing", 101), f"{NOTEBOOK}.ipynb", "flat"): nb(course, WRONG),
    })
    collect.collect(course, LAB, team_lab, roster=team_sheet)
    collect.collect(course, LAB2, individual_lab, roster=sheet2)
    grade(course, LAB)
    grade(course, LAB2)
    written = export_grades(course, [LAB, LAB2], notes=(notes := []))
    return course, written, notes, {lab: export_feedback(course, lab) for lab in (LAB, LAB2)}


def records(participants: list[str]) -> dict[str, GradeRecord | None]:
    return {participant: None for participant in participants}


def test_moodle_team_and_individual_worksheets_import_as_moodle_reads_them(moodle):
    course, written, notes, _ = moodle
    team = moodle_import(written[f"moodle-{LAB}"].read_text(encoding="utf-8"), LMS_POINTS,
                         records(["101", "102", "17", "18"]))
    assert team.problems == [] and team.skipped == {}
    # Team A's grade to both its members, never to participant 17 for group id 17 (Grace, Team B: 0).
    assert team.grades == {"101": 10.0, "102": 10.0, "17": 0.0, "18": 0.0}
    individual = moodle_import(written[f"moodle-{LAB2}"].read_text(encoding="utf-8"), LMS_POINTS,
                               records(["555", "101", "556", "557"]))
    assert individual.problems == [] and individual.skipped == {}
    # Participant 101 is Alan in this lab (Ada in the other): his grade, not hers.
    assert individual.grades == {"555": 10.0, "101": 0.0, "556": 0.0, "557": 0.0}
    assert sorted(p.name for p in course.submitted.iterdir()) == [
        "ada@example.edu", "alan@example.edu", "grace@example.edu"]
    assert any("tiny2: points out of 3 -> out of 10" in note for note in notes)


def test_moodle_feedback_files_go_to_each_team_member_by_their_own_participant_number(moodle):
    _, _, _, zips = moodle
    # importziplib.php maps files by get_uniqueid_for_user (a person), never by group id.
    team = moodle_feedback_import(zip_names(zips[LAB]["moodle"]), {"101", "102", "17", "18"})
    assert "" not in team and sorted(team) == ["101", "102", "17"]
    individual = moodle_feedback_import(zip_names(zips[LAB2]["moodle"]), {"555", "101", "556", "557"})
    # Grace (556) handed in nothing: Moodle takes her file too (the page says her work was not found).
    assert "" not in individual and {"101", "555"} <= set(individual) <= {"101", "555", "556", "557"}


def test_the_worksheet_keeps_moodle_time_so_no_row_is_skipped_after_a_feedback_upload(moodle):
    _, written, _, _ = moodle
    exported = datetime.fromtimestamp(written[f"moodle-{LAB}"].stat().st_mtime, UTC)
    # The feedback zip uploaded first creates grade records a little before the worksheet is imported.
    before = {p: GradeRecord(None, exported.replace(microsecond=0)) for p in ("101", "102", "17", "18")}
    team = moodle_import(written[f"moodle-{LAB}"].read_text(encoding="utf-8"), LMS_POINTS, before)
    assert team.skipped == {} and team.grades["101"] == 10.0
