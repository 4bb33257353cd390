"""report: index.html with plots, pass rates, common failures, status lists; grades.csv from the gradebook."""

from __future__ import annotations

import csv
import html
import json
import re

import pytest
from nbgrader.api import Gradebook
from submissions.graded import graded_tiny_course
from submissions.tiny_lab import LAB, NOTEBOOK

from gradekit.__main__ import main as gradekit_main
from gradekit.course import Course
from gradekit.report import normalise_message

STATUS = {"lab": LAB, "sandboxed": True, "students": [
    {"student": "good", "status": "graded", "reason": "", "repairs": [], "flags": [], "score": 5,
     "max_score": 6, "seconds": 3.1},
    {"student": "wrong", "status": "graded", "reason": "", "flags": [],
     "repairs": ["test cell 'test_sigmoid' was deleted: re-inserted it from the release"],
     "score": 0, "max_score": 6, "seconds": 3.3},
    {"student": "partial", "status": "graded", "reason": "", "repairs": [], "score": 2, "max_score": 6,
     "flags": ["cell 5 (sigmoid), line 2: rebinds `torch.allclose`"], "seconds": 3.0},
    {"student": "broken", "status": "invalid", "reason": "invalid JSON at line 3, column 1", "repairs": [],
     "flags": [], "score": None, "max_score": 6, "seconds": 0.0},
    {"student": "slow", "status": "timed out", "reason": "over 300 s", "repairs": [], "flags": [],
     "score": None, "max_score": 6, "seconds": 300.0},
]}


pytestmark = pytest.mark.xdist_group("report")  # module fixtures are built once, on one worker

@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def reported(tmp_path_factory) -> Course:
    course = graded_tiny_course(tmp_path_factory.mktemp("report"))
    with Gradebook(course.db_url) as gradebook:  # a manual grade for the written answer
        grade = gradebook.find_grade("answer_why", NOTEBOOK, LAB, "good")
        grade.manual_score = 1.0
        gradebook.db.commit()
    (course.root / "reports" / LAB).mkdir(parents=True)
    (course.root / "reports" / LAB / "status.json").write_text(json.dumps(STATUS))
    assert gradekit_main(["report", "--course", str(course.root)]) == 0
    return course


@pytest.mark.slow
def test_grades_csv_matches_the_gradebook_with_manual_grades(reported):
    with (reported.root / "reports" / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    with Gradebook(reported.db_url) as gradebook:
        expected = {s.student.id: s.score for s in gradebook.assignment_submissions(LAB)}
    assert set(rows) == set(expected)
    for student, score in expected.items():
        assert float(rows[student][LAB]) == score and float(rows[student]["total"]) == score
    assert float(rows["good"][LAB]) == 6.0  # 5 autograded + 1 manual


@pytest.mark.slow
def test_index_has_plots_pass_rates_failures_and_status(reported):
    markup = (reported.root / "reports" / "index.html").read_text()
    assert markup.count('src="data:image/png;base64,') == 2
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))
    # pass rates: test_sigmoid passed by good and partial (2 of 3), test_mean_std by good only (1 of 3)
    assert re.search(r"test_sigmoid\s+67%", text) and re.search(r"test_mean_std\s+33%", text)
    # the Bessel mistake is made by two students: one message, counted twice
    assert "2× CheckFailed: mean_std (std): wrong value at index (#,): got #, expected #" in text
    assert "1× CheckFailed: sigmoid: wrong value at index (#, #)" in text
    assert "Invalid submissions (1)" in text and "invalid JSON at line 3" in text
    assert "Timed out (1)" in text and "Repaired (1)" in text
    assert "Flagged for possible tampering (1)" in text and "rebinds `torch.allclose`" in text


def test_messages_are_normalised_by_numbers_not_names():
    a = normalise_message("CheckFailed: sigmoid: wrong value at index (3, 0): got 0.1, expected 0.9\n Hint: x")
    b = normalise_message("CheckFailed: sigmoid: wrong value at index (1, 0): got -2e-05, expected 7\n Hint: y")
    assert a == b == "CheckFailed: sigmoid: wrong value at index (#, #): got #, expected #"
    assert normalise_message("NameError: name 'sigmoid2' is not defined") == \
        "NameError: name 'sigmoid2' is not defined"
