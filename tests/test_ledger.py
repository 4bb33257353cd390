"""The grade ledger (`gradekit.course.ledger`): a grade leaves the kit only while it is the grade of the exact
files in submitted/ and of the lab's current tests; anything else is outdated, blank in every export, said
so in the report and on the student's page, and `grade --outdated` regrades exactly those students."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, build_tiny_course, submission, submit_source
from nbgrader.api import Gradebook

from gradekit.course import ledger
from gradekit.course.directory import Course
from gradekit.course.exits import EXIT_OK, EXIT_USAGE
from gradekit.course.ledger import outdated, submission_digest, ungraded, why_outdated
from gradekit.course.lock import LOCK_NAME
from gradekit.course.status import Status, StudentStatus, read_status, write_status
from gradekit.delivery.feedback import write_feedback
from gradekit.delivery.lms_export import export_grades, results
from gradekit.delivery.report import write_report
from gradekit.grading.run import grade_lab
from gradekit.sandbox.settings import Limits

RIGHT = "def double(x):\n    return 2 * x\n"
WRONG = "def double(x):\n    return x + 1\n"


# ---------------------------------------------------------------- the rules, without a course


def entry(status: str = Status.GRADED, digest: str = "a", tests: str = "t") -> StudentStatus:
    return StudentStatus("ann", status, input_digest=digest, tests_digest=tests)


@pytest.mark.parametrize(("ledger", "now", "tests", "why"), [
    (entry(), "a", "t", ""),
    (entry(), "b", "t", "submitted again after grading"),
    (entry(), "", "t", "the graded submission is no longer in submitted/"),
    (entry(), "a", "u", "the lab's tests changed after grading"),
    (entry(Status.GRADER_ERROR), "a", "t", "the grader failed on it"),
    (entry(Status.INVALID), "a", "t", ""),  # the invalid verdict is of this very file: it stands
    (entry(Status.INVALID), "b", "t", "submitted again after grading"),
    (entry(Status.MISSING, digest=""), "b", "t", ""),  # nothing was graded: "not graded yet", said elsewhere
])
def test_a_grade_is_current_only_for_the_files_and_tests_it_was_made_of(ledger, now, tests, why):
    assert why_outdated(ledger, now, tests) == why


def test_without_a_ledger_entry_nbgrader_autograde_order_decides(tmp_path):
    submitted, graded = tmp_path / "submitted", tmp_path / "autograded.ipynb"
    submitted.mkdir()
    (submitted / "lab.ipynb").write_text("{}")
    graded.write_text("{}")
    os.utime(submitted / "lab.ipynb", (1000, 1000))
    os.utime(graded, (2000, 2000))
    assert why_outdated(None, "", "", graded, submitted) == ""
    os.utime(submitted / "lab.ipynb", (3000, 3000))  # placed after nbgrader graded it
    assert why_outdated(None, "", "", graded, submitted) == "submitted again after grading"


def test_the_digest_covers_every_regular_file_and_nothing_else(tmp_path):
    folder = tmp_path / "ann" / LAB
    (folder / "data").mkdir(parents=True)
    (folder / "lab.ipynb").write_bytes(b"{}")
    (folder / "data" / "x.csv").write_bytes(b"1,2")
    first = submission_digest(folder)
    (folder / "link").symlink_to("/etc/passwd")  # staging never copies a symlink: not part of what is graded
    assert submission_digest(folder) == first
    (folder / "data" / "x.csv").write_bytes(b"1,3")
    assert submission_digest(folder) != first
    (folder / "data" / "x.csv").write_bytes(b"1,2")
    (folder / "data" / "x.csv").rename(folder / "data" / "y.csv")  # same bytes, another name
    assert submission_digest(folder) != first
    assert submission_digest(tmp_path / "nobody") == ""


# ---------------------------------------------------------------- a graded course


def grade(course: Course, students: list[str] | None = None) -> None:
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=120), progress=io.StringIO(), students=students)
    write_status(course, run.status_file(), partial=students is not None)


def exported(course: Course) -> dict[str, tuple[str, str]]:
    rows, _ = results(course, [LAB])
    return {row.student: (row.labs[LAB].status, "" if row.labs[LAB].score is None else f"{row.labs[LAB].score:g}")
            for row in rows}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = build_tiny_course(tmp_path_factory.mktemp("ledger") / "course")
    for student, answer in (("ann", RIGHT), ("bob", WRONG), ("cy", RIGHT)):
        submit_source(course, student, answer)
    grade(course)
    return course


@pytest.mark.slow
@pytest.mark.xdist_group("ledger")
def test_a_resubmission_is_outdated_everywhere_until_graded_then_current(graded, tmp_path):
    course = graded
    assert exported(course) == {"ann": ("graded", "3"), "bob": ("graded", "0"), "cy": ("graded", "3")}
    assert outdated(course, LAB) == {} and ungraded(course, LAB) == []

    # Ann hands in the blank release after her graded notebook (a re-collect, or a file placed by hand).
    submit_source(course, "ann", None)
    assert outdated(course, LAB) == {"ann": "submitted again after grading"}
    assert exported(course)["ann"] == ("outdated", "")  # blank: never her old 3 points passed off as current
    written = export_grades(course, [LAB], out=tmp_path / "lms")
    with written["plain"].open(encoding="utf-8", newline="") as handle:
        plain = {row["student"]: row for row in csv.DictReader(handle)}
    assert plain["ann"][f"{LAB} points"] == "" and plain["ann"][f"{LAB} status"] == "outdated"
    assert f"gradekit grade {LAB} --outdated" in plain["ann"][f"{LAB} reason"]
    assert plain["bob"][f"{LAB} points"] == "0"
    report_page, report_csv = write_report(course, [LAB])
    assert "Outdated grades" in report_page.read_text(encoding="utf-8")
    with report_csv.open(encoding="utf-8", newline="") as handle:
        assert {row["student"]: row[LAB] for row in csv.DictReader(handle)}["ann"] == ""
    pages = {page.parent.parent.name: page.read_text(encoding="utf-8") for page in write_feedback(course, LAB)}
    assert "has not been graded yet" in pages["ann"] and "3 / 3" not in pages["ann"]
    assert "has not been graded yet" not in pages["bob"]

    # `grade --outdated` grades exactly Ann; then her grade is the blank notebook's.
    assert ungraded(course, LAB) == ["ann"]
    before = read_status(course, LAB).students["bob"]
    grade(course, ungraded(course, LAB))
    assert outdated(course, LAB) == {}
    assert exported(course)["ann"] == ("graded", "0")
    assert read_status(course, LAB).students["bob"] == before  # nobody else was regraded


@pytest.mark.slow
@pytest.mark.xdist_group("ledger")
def test_a_grader_error_and_changed_tests_are_outdated_never_exported(graded):
    course = graded
    status = read_status(course, LAB)
    cy = status.students["cy"]
    assert exported(course)["cy"] == ("graded", "3")
    failed = StudentStatus("cy", Status.GRADER_ERROR, "grader error: the executor died",
                           input_digest=cy.input_digest, tests_digest=cy.tests_digest)
    write_status(course, type(status)(LAB, students={"cy": failed}), partial=True)
    assert exported(course)["cy"] == ("outdated", "")  # the old 3 points stay in the gradebook, not in the export
    assert "cy" in ungraded(course, LAB)
    write_status(course, type(status)(LAB, students={"cy": cy}), partial=True)

    # The instructor changes a test's points in the gradebook (generate_assignment after an edit does this).
    with Gradebook(course.db_url) as gradebook:
        before = ledger.tests_digest(gradebook, LAB)
        cell = gradebook.find_grade_cell("test_double", NOTEBOOK, LAB)
        cell.max_score = 4
        gradebook.db.commit()
        assert ledger.tests_digest(gradebook, LAB) != before
    try:
        assert set(outdated(course, LAB)) == {"ann", "bob", "cy"}
        assert {status for status, _ in exported(course).values()} == {"outdated"}
    finally:
        with Gradebook(course.db_url) as gradebook:
            gradebook.find_grade_cell("test_double", NOTEBOOK, LAB).max_score = 3
            gradebook.db.commit()
    assert outdated(course, LAB) == {}


@pytest.mark.slow
@pytest.mark.xdist_group("ledger")
def test_collect_waits_for_no_grading_run_it_is_refused_and_touches_nothing(graded, tmp_path):
    course = graded
    download = tmp_path / "canvas.zip"
    with zipfile.ZipFile(download, "w") as archive:
        archive.writestr(f"leeann_105_1005_{NOTEBOOK}.ipynb", nbformat.writes(submission(course, RIGHT)))
    before = sorted(str(p.relative_to(course.root)) for p in course.submitted.rglob("*"))
    with open(course.root / LOCK_NAME, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a grading run holds the course
        done = subprocess.run([sys.executable, "-m", "gradekit", "collect", LAB, str(download),
                               "--course", str(course.root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_USAGE and "another grading run or collect" in done.stderr, done.stderr
    assert sorted(str(p.relative_to(course.root)) for p in course.submitted.rglob("*")) == before
    done = subprocess.run([sys.executable, "-m", "gradekit", "collect", LAB, str(download),
                           "--course", str(course.root)], capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    assert f"gradekit grade {LAB} --outdated" in done.stdout  # 105 is new: said at once
    assert "105" in ungraded(course, LAB)


def test_grade_outdated_with_nothing_to_grade_says_so(tmp_path):
    course = build_tiny_course(tmp_path / "course")
    done = subprocess.run([sys.executable, "-m", "gradekit", "grade", LAB, "--outdated", "--course", str(course.root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_OK and "nothing to grade" in done.stderr, done.stderr
    assert not Path(course.root / "reports").exists()
