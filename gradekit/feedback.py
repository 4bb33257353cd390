"""`feedback`: one HTML page per student and lab, without the hidden tests.

nbgrader's own feedback shows the full test cells and tracebacks, which quote hidden test lines.
Here a page shows, per graded cell: the score (from the gradebook), the student's own code, the
visible part of each test cell, and for a failing test only `ename: evalue` (e.g. the
CheckFailed message with its hint). Everything is HTML-escaped: student code is untrusted.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from gradekit.course import Course
from gradekit.safe_text import multiline_safe

HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?(^[ \t]*### END HIDDEN TESTS[^\n]*\n?|\Z)",
                          re.MULTILINE | re.DOTALL | re.IGNORECASE)
WARNING_LINE = re.compile(r"\b(\w+(?:Warning|Error)): (.*)$", re.MULTILINE)
MAX_MESSAGE_CHARS = 2000


def visible_source(source: str) -> str:
    """A test cell's source without its hidden tests (an unterminated block is cut to the end)."""
    return HIDDEN_TESTS.sub("# (hidden tests run here)\n", source).rstrip()


def clean(text: str) -> str:
    # Every escape sequence (colours, but also OSC titles/links), control and bidi character goes:
    # these messages are shown here and, counted, in the instructor's report.
    return multiline_safe(text)[:MAX_MESSAGE_CHARS]


def failure_messages(cell: NotebookNode) -> list[str]:
    """What went wrong in a cell, without traceback frames: `ename: evalue`, and stderr notes."""
    messages = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            messages.append(clean(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"))
        elif output.get("output_type") == "stream" and output.get("name") == "stderr":
            # stderr may echo source lines (warnings quote the line): keep only a message line
            found = [f"{m[1]}: {m[2].strip()}" for m in WARNING_LINE.finditer(clean(output.get("text", "")))]
            detail = f": {found[0]}" if found else ""
            messages.append(f"The cell wrote to stderr (a test cell that does gets 0 points){detail}")
    return messages


def student_messages(cell: NotebookNode) -> list[str]:
    """For the student's own cells: the error line and up to 20 lines of what it printed."""
    messages = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            messages.append(clean(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"))
        elif output.get("output_type") == "stream":
            messages.append(clean("".join(output.get("text", "").splitlines(keepends=True)[:20])))
    return messages


class HideHiddenTests(NbGraderPreprocessor):
    """For nbgrader's own feedback (`nbgrader generate_feedback`, the formgrader's button).

    nbgrader renders the autograded notebook, whose test cells hold the hidden tests (restored from
    the source) and whose tracebacks quote them. Configured in nbgrader_config.py as one of
    `GenerateFeedback.preprocessors`, this cuts every hidden block out of every cell (student cells
    too: a marker there must not hide anything else) and reduces errors and stderr to the message
    lines our own pages show.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        for cell in nb.cells:
            if "hidden tests" in cell.source.lower():
                cell.source = visible_source(cell.source)
            if cell.cell_type != "code":
                continue
            outputs = []
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    message = clean(f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
                    output["traceback"] = [message]
                elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["text"] = "\n".join(failure_messages(nbformat.from_dict({"outputs": [output]}))) + "\n"
                outputs.append(output)
            cell.outputs = outputs
        return nb, resources


@dataclass
class CellGrade:
    grade_id: str
    score: float | None
    max_score: float
    needs_manual: bool
    comment: str


def gradebook_grades(course: Course, lab: str, notebook: str,
                     student: str) -> tuple[dict[str, CellGrade], float, float]:
    """Per-cell grades and the notebook total, from nbgrader's gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(course.db_url) as gradebook:
        warnings.simplefilter("ignore")  # SQLAlchemy session warnings from nbgrader's lazy loading
        try:
            submission = gradebook.find_submission_notebook(notebook, lab, student)
        except MissingEntry:
            return {}, 0.0, 0.0
        comments = {c.name: (c.manual_comment or c.auto_comment or "") for c in submission.comments}
        grades = {g.name: CellGrade(g.name, g.score, g.max_score, g.needs_manual_grade, comments.get(g.name, ""))
                  for g in submission.grades}
        return grades, float(submission.score), float(submission.max_score)


def _score_text(grade: CellGrade | None) -> str:
    if grade is None:
        return ""
    if grade.needs_manual:
        return f"to be graded by hand / {grade.max_score:g}"
    return f"{grade.score or 0:g} / {grade.max_score:g}"


def _status(grade: CellGrade | None) -> str:
    if grade is None or grade.needs_manual:
        return "pending"
    return "pass" if (grade.score or 0) >= grade.max_score else "fail"


def _pre(text: str, css: str = "") -> str:
    return f'<pre class="{css}">{html.escape(text)}</pre>'


def render_cell(cell: NotebookNode, grade: CellGrade | None) -> str:
    meta = cell.metadata.get("nbgrader", {})
    grade_id = meta.get("grade_id", "")
    parts = []
    if meta.get("grade") and not meta.get("solution"):
        title = f"Test <code>{html.escape(grade_id)}</code>"
        parts.append(_pre(visible_source(cell.source), "code"))
        messages = failure_messages(cell)
        if messages:
            parts += [_pre(message, "error") for message in messages]
        elif _status(grade) == "pass":
            parts.append('<p class="ok">All checks passed.</p>')
    elif meta.get("solution"):
        title = f"Your answer <code>{html.escape(grade_id)}</code>"
        css = "code" if cell.cell_type == "code" else "text"
        parts.append(_pre(cell.source, css))
        parts += [_pre(message, "output") for message in student_messages(cell)]
    else:
        return ""
    score = _score_text(grade)
    header = f'<h2 class="{_status(grade) if score else ""}">{title}'
    header += f' <span class="score">{html.escape(score)}</span></h2>' if score else "</h2>"
    if grade is not None and grade.comment:
        parts.append(f'<p class="comment">Comment: {html.escape(grade.comment)}</p>')
    return f'<section>{header}{"".join(parts)}</section>'


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
pre.error { background: #fdecea; color: #611a15; } pre.output { background: #eef; }
h2 .score { float: right; font-weight: normal; } h2.pass .score { color: #1a7f37; }
h2.fail .score { color: #b42318; } p.ok { color: #1a7f37; }
p.notice { background: #fff4e5; border-left: 4px solid #b54708; padding: .5em 1em; }
table { border-collapse: collapse; } td, th { padding: .2em .8em; border-bottom: 1px solid #ddd; }
"""


def grading_status(course: Course, lab: str) -> dict[str, dict]:
    """student -> their line of reports/<lab>/status.json (written by `gradekit grade`), if any."""
    path = course.root / "reports" / lab / "status.json"
    if not path.exists():
        return {}
    return {entry["student"]: entry for entry in json.loads(path.read_text())["students"]}


def status_notice(entry: dict | None) -> str:
    """What a student must know when their notebook was not graded normally."""
    if not entry or entry["status"] == "graded":
        return ""
    what = {"invalid": "could not be graded", "timed out": "was stopped: it ran out of time",
            "crashed": "stopped before the end", "missing": "was not found"}.get(entry["status"], entry["status"])
    return (f'<p class="notice">Your submission {html.escape(what)}: {html.escape(entry["reason"])}. '
            "Cells that did not run score 0. Fix the problem, check that the notebook runs top to bottom "
            "(Runtime &gt; Restart and run all), and contact your instructor.</p>")


def notice_page(student: str, lab: str, notice: str, max_total: float | None = None) -> str:
    score = "" if max_total is None else f"<p>Score: <b>0 / {max_total:g}</b></p>"
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(lab)} feedback</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(lab)}: feedback for {html.escape(student)}"
            f"</h1>{notice}{score}</body></html>")


def _max_score(course: Course, lab: str) -> float | None:
    if not course.has_gradebook():
        return None
    from nbgrader.api import Gradebook, MissingEntry

    with warnings.catch_warnings(), Gradebook(course.db_url) as gradebook:
        warnings.simplefilter("ignore")
        try:
            return float(gradebook.find_assignment(lab).max_score)
        except MissingEntry:
            return None


def render_page(nb: NotebookNode, grades: dict[str, CellGrade], total: float, max_total: float,
                student: str, lab: str, notice: str = "") -> str:
    rows = "".join(f"<tr><td>{html.escape(g.grade_id)}</td><td>{html.escape(_score_text(g))}</td></tr>"
                   for g in grades.values())
    sections = "".join(render_cell(cell, grades.get(cell.metadata.get("nbgrader", {}).get("grade_id", "")))
                       for cell in nb.cells)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(lab)} feedback"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(lab)}: feedback for "
            f"{html.escape(student)}</h1>{notice}<p>Score: <b>{total:g} / {max_total:g}</b> (written answers are "
            f"graded by hand). Failing tests show the message of the first failed check; hidden tests run "
            f"on random inputs and are not shown.</p><table><tr><th>cell</th><th>score</th></tr>{rows}"
            f"</table>{sections}</body></html>")


def write_feedback(course: Course, lab: str, students: list[str] | None = None) -> list[Path]:
    """Write feedback/<student>/<lab>/<notebook>.html for every autograded student; returns the pages."""
    from gradekit.lms.gradebook import load_ungradable

    notebook = course.notebook_name(lab) if course.source.joinpath(lab).is_dir() else None
    statuses = grading_status(course, lab)
    # A submission recorded as ungradable (0 points) after the last status.json was written.
    for student, record in load_ungradable(course, lab).items():
        if statuses.get(student, {}).get("status") != "graded":
            statuses[student] = {"student": student, "status": "invalid", "reason": record["reason"]}
    pages = []
    for path in sorted(course.autograded.glob(f"*/{lab}/*.ipynb")):
        student = path.parent.parent.name
        if (students and student not in students) or statuses.get(student, {}).get("status") == "invalid":
            continue  # an old notebook of a student whose latest submission could not be graded: stale
        name = notebook or path.stem
        nb = nbformat.read(path, as_version=4)
        grades, total, max_total = gradebook_grades(course, lab, name, student)
        page = course.feedback / student / lab / f"{name}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        notice = status_notice(statuses.get(student))
        page.write_text(render_page(nb, grades, total, max_total, student, lab, notice), encoding="utf-8")
        pages.append(page)
    graded = {page.parent.parent.name for page in pages}
    max_total = _max_score(course, lab)
    for student, entry in sorted(statuses.items()):
        # Invalid submissions have no autograded notebook: the page says why.
        if student in graded or (students and student not in students) or entry["status"] == "graded":
            continue
        page = course.feedback / student / lab / f"{notebook or lab}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        zero = max_total if entry["status"] == "invalid" else None  # invalid work scores 0 (record_ungradable)
        page.write_text(notice_page(student, lab, status_notice(entry), zero), encoding="utf-8")
        pages.append(page)
    return pages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--student", action="append", help="only these students (repeatable)")


def main(args: argparse.Namespace) -> int:
    from gradekit.course import repo_course

    course = Course(args.course.resolve()) if args.course else repo_course()
    pages = write_feedback(course, args.lab, args.student)
    print(f"wrote {len(pages)} feedback page(s) to {course.feedback}/<student>/{args.lab}/")
    return 0 if pages else 1
