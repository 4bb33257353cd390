"""feedback: per-student HTML with scores and failure messages, never the hidden tests or tracebacks."""

from __future__ import annotations

import html
import json
import re

import nbformat
import pytest
from nbgrader.api import Gradebook
from submissions.graded import graded_tiny_course
from submissions.tiny_lab import HIDDEN_SECRET, LAB, NOTEBOOK

from gradekit.commands import main as gradekit_main
from gradekit.course.directory import Course
from gradekit.delivery.feedback import failure_messages, visible_source

COMMENT = "Right idea; say why one step size <b>fits</b> all."

pytestmark = pytest.mark.xdist_group("feedback")  # module fixtures are built once, on one worker

@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def graded(tmp_path_factory) -> Course:
    course = graded_tiny_course(tmp_path_factory.mktemp("graded"))
    with Gradebook(course.db_url) as gradebook:
        # good: the written answer graded by hand, with a comment (that quotes markup)
        grade = gradebook.find_grade("answer_why", NOTEBOOK, LAB, "good")
        grade.manual_score, grade.needs_manual_grade = 1.0, False
        gradebook.find_comment("answer_why", NOTEBOOK, LAB, "good").manual_comment = COMMENT
        # wrong: graded by hand, then a regrade marked it for review again: the points still count
        grade = gradebook.find_grade("answer_why", NOTEBOOK, LAB, "wrong")
        grade.manual_score, grade.needs_manual_grade = 0.5, True
        gradebook.db.commit()  # partial: never graded by hand
    assert gradekit_main(["feedback", LAB, "--course", str(course.root)]) == 0
    return course


def page(course: Course, student: str) -> str:
    return (course.feedback / student / LAB / f"{NOTEBOOK}.html").read_text()


def text_of(markup: str) -> str:
    return re.sub(r"[ \t]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", markup)))


def test_every_graded_student_has_a_page(graded):
    assert sorted(p.parent.parent.name for p in graded.feedback.glob(f"*/{LAB}/*.html")) == \
        ["good", "partial", "wrong"]


@pytest.mark.slow
def test_failure_messages_and_scores_are_shown(graded):
    wrong = text_of(page(graded, "wrong"))
    assert "Score: 0.5 / 6" in wrong  # 0 autograded + 0.5 by hand
    assert "CheckFailed: sigmoid: wrong value at index" in wrong
    assert "Hint: 1 / (1 + exp(-z))" in wrong
    assert "CheckFailed: mean_std (std): wrong value" in wrong and "divide by N, not N - 1." in wrong
    assert "torch.exp(z)" in wrong  # the student's own code
    assert 'check_tensor("sigmoid", sigmoid(z)' in wrong  # the visible test
    good = text_of(page(graded, "good"))
    assert "Score: 6 / 6" in good and "CheckFailed" not in good and "All checks passed." in good
    partial = text_of(page(graded, "partial"))
    assert "2 / 2" in partial and "0 / 3" in partial


@pytest.mark.slow
def test_no_hidden_tests_no_traceback_and_everything_escaped(graded):
    autograded = nbformat.read(graded.autograded / "wrong" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    assert any(HIDDEN_SECRET in cell.source for cell in autograded.cells)  # nbgrader restored them
    assert any(o.get("traceback") for c in autograded.cells for o in c.get("outputs", []))
    for student in ("good", "wrong", "partial"):
        markup = page(graded, student)
        assert HIDDEN_SECRET not in markup and "make_generator(3)" not in markup
        assert "Traceback" not in markup and "\x1b[" not in markup
    markup = page(graded, "wrong")
    assert "<script>" not in markup and "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_visible_source_strips_hidden_blocks():
    source = ("a = 1\n### BEGIN HIDDEN TESTS\nsecret = 2\n### END HIDDEN TESTS\nb = 3\n"
              "    ### begin hidden tests\n    secret2 = 4\n")  # second block unterminated
    visible = visible_source(source)
    assert "a = 1" in visible and "b = 3" in visible
    assert "secret" not in visible


def test_failure_messages_have_no_traceback_frames():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("error", ename="CheckFailed", evalue="f: wrong\n  Hint: h",
                                           traceback=["\x1b[31mhidden_line = secret()\x1b[0m"]),
                    nbformat.v4.new_output("stream", name="stderr",
                                           text="t.py:3: UserWarning: careful\n  hidden_call(secret)\n")]
    messages = failure_messages(cell)
    assert messages[0] == "CheckFailed: f: wrong\n  Hint: h"
    assert "UserWarning: careful" in messages[1] and "secret" not in " ".join(messages)


def test_students_whose_notebook_was_not_graded_get_a_page_saying_why(tmp_path):
    from gradekit.course.directory import Course
    from gradekit.delivery.feedback import write_feedback

    course = Course(tmp_path)
    status = {"lab": "lab9", "sandboxed": True, "students": [
        {"student": "dan", "status": "invalid", "reason": "invalid JSON at line 3 <truncated>", "repairs": [],
         "flags": [], "score": None, "max_score": None, "seconds": None},
        {"student": "ok", "status": "graded", "reason": "", "repairs": [], "flags": [], "score": 1.0,
         "max_score": 1.0, "seconds": 1.0}]}
    (tmp_path / "reports" / "lab9").mkdir(parents=True)
    (tmp_path / "reports" / "lab9" / "status.json").write_text(json.dumps(status))
    pages = write_feedback(course, "lab9")
    assert [p.relative_to(tmp_path).as_posix() for p in pages] == ["feedback/dan/lab9/lab9.html"]
    text = pages[0].read_text()
    assert "could not be graded" in text and "invalid JSON at line 3 &lt;truncated&gt;" in text


def test_nbgrader_feedback_preprocessor_cuts_hidden_tests_and_tracebacks():
    from gradekit.delivery.feedback import HideHiddenTests

    test = nbformat.v4.new_code_cell("check(f(1))\n### BEGIN HIDDEN TESTS\nsecret_case()\n### END HIDDEN TESTS\n")
    test.outputs = [nbformat.v4.new_output("error", ename="CheckFailed", evalue="f: wrong",
                                           traceback=["----> 3 secret_case()", "CheckFailed: f: wrong"]),
                    nbformat.v4.new_output("stream", name="stderr", text="x.py:1: UserWarning: w\n  secret_case()\n")]
    student = nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN HIDDEN TESTS\n    return secret_case")
    nb = nbformat.v4.new_notebook(cells=[test, student])
    nb, _ = HideHiddenTests().preprocess(nb, {})
    text = json.dumps(nb)
    assert "secret_case" not in text and "check(f(1))" in text
    assert nb.cells[0].outputs[0].traceback == ["CheckFailed: f: wrong"]
    assert "UserWarning: w" in nb.cells[0].outputs[1].text


def fix_first_items(markup: str) -> list[tuple[str, str]]:
    """(link target, text) of each item of "What to fix first"."""
    section = re.search(r'<section class="fix-first">(.*?)</section>', markup, re.DOTALL)
    if section is None:
        return []
    return [(target, html.unescape(re.sub(r"<[^>]+>", "", item)).strip()) for target, item in
            re.findall(r'<li><a href="#([^"]+)">(.*?)</li>', section[1], re.DOTALL)]


@pytest.mark.slow
def test_pages_open_with_what_to_fix_first_linking_to_the_failing_cells(graded):
    markup = page(graded, "wrong")
    assert markup.index("What to fix first") < markup.index("<table")  # before the details
    items = fix_first_items(markup)
    assert [text.split(" (test ")[0] for _, text in items] == ["sigmoid", "mean_std"]  # notebook order
    assert "(test test_sigmoid): CheckFailed: sigmoid: wrong value at index" in items[0][1]
    assert "(test test_mean_std): CheckFailed: mean_std (std): wrong value" in items[1][1]
    for target, _ in items:  # every link lands on its test cell's section
        cell = re.search(rf'<section id="{re.escape(target)}">(.*?)</section>', markup, re.DOTALL)
        assert cell is not None and "Test <code>test_" in cell[1]
    assert [text.split(" (test ")[0] for _, text in fix_first_items(page(graded, "partial"))] == ["mean_std"]
    assert fix_first_items(page(graded, "good")) == [] and "What to fix first" not in page(graded, "good")


@pytest.mark.slow
def test_written_answers_show_the_hand_grade_and_comment_or_that_they_wait(graded):
    good = text_of(page(graded, "good"))
    assert "Graded by hand: 1 / 1" in good
    assert f"Instructor's comment: {COMMENT}" in good and "to be graded by hand" not in good.lower()
    assert "&lt;b&gt;fits&lt;/b&gt;" in page(graded, "good")  # the comment is text, not markup
    wrong = text_of(page(graded, "wrong"))  # a regrade asked for review: the given points still show
    assert "Graded by hand: 0.5 / 1" in wrong and "to be graded by hand" not in wrong.lower()
    partial = text_of(page(graded, "partial"))
    assert "To be graded by hand: your instructor has not graded this answer yet." in partial
    assert "to be graded by hand / 1" in partial and "1 written answer(s) still to be graded by hand" in partial
