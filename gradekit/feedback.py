"""`feedback`: one HTML page per student and lab, without the hidden tests.

nbgrader's own feedback shows the full test cells and tracebacks, which quote hidden test lines.
Here a page opens with "What to fix first" (the failing test cells in notebook order, each with the
function it names and a link to the cell below), then shows, per graded cell: the score (from the
gradebook), the student's own code, the visible part of each test cell, for a failing test only
`ename: evalue` (e.g. the CheckFailed message with its hint), and for written answers the points
and comment the instructor gave by hand ("to be graded by hand" only while they have not).
Everything is HTML-escaped: student code is untrusted.
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
from gradekit.exits import UsageError
from gradekit.safe_text import multiline_safe

HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?(^[ \t]*### END HIDDEN TESTS[^\n]*\n?|\Z)",
                          re.MULTILINE | re.DOTALL | re.IGNORECASE)
WARNING_LINE = re.compile(r"\b(\w+(?:Warning|Error)): (.*)$", re.MULTILINE)
MAX_MESSAGE_CHARS = 2000
MAX_FIX_FIRST = 5  # "What to fix first" stays short: the first failures in notebook order
# `CheckFailed: mean_std (std): wrong value` / `sigmoid: is not written yet`: the function the check names.
MESSAGE_FUNCTION = re.compile(r"^(?:\w+: )?(?P<name>[A-Za-z_][\w.]*)(?: \([^)\n]*\))?: ")
CHECK_CALL = re.compile(r"\bcheck_\w+\(\s*[\"'](?P<name>[A-Za-z_][\w.]*)")


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
    manual_score: float | None = None  # points the instructor gave by hand (nbgrader's Grade.manual_score)
    written: bool = False  # a written answer (markdown, graded by hand), not an autograded cell

    @property
    def graded_by_hand(self) -> bool:
        return self.manual_score is not None

    @property
    def pending(self) -> bool:
        """Waiting for the instructor: "to be graded by hand" on the page.

        A score the instructor gave stands (nbgrader's total counts it) even when a regrade marked the
        cell for review again, so it is shown, not hidden behind "to be graded by hand"."""
        return self.needs_manual and self.manual_score is None

    @property
    def points(self) -> float:
        return float((self.manual_score if self.graded_by_hand else self.score) or 0)


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
        # In notebook order, whatever the database: PostgreSQL returns rows in no fixed order (a row it
        # updates, a manual grade, moves to the end), SQLite in the order they were written.
        position = {name: index for index, name in enumerate(_grade_ids_in_order(course, lab, notebook))}
        ordered = sorted(submission.grades, key=lambda g: (position.get(g.name, len(position)), g.name))
        grades = {g.name: CellGrade(g.name, g.score, g.max_score, g.needs_manual_grade, comments.get(g.name, ""),
                                    None if g.manual_score is None else float(g.manual_score),
                                    g.cell.cell_type == "markdown")
                  for g in ordered}
        return grades, float(submission.score), float(submission.max_score)


def _grade_ids_in_order(course: Course, lab: str, notebook: str) -> list[str]:
    """The grade ids of the lab's notebook, top to bottom (from the release students got)."""
    path = course.release / lab / f"{notebook}.ipynb"
    if not path.is_file():
        return []
    cells = nbformat.read(path, as_version=4).cells
    return [c.metadata["nbgrader"]["grade_id"] for c in cells if "grade_id" in c.metadata.get("nbgrader", {})]


def _score_text(grade: CellGrade | None) -> str:
    if grade is None:
        return ""
    if grade.pending:
        return f"to be graded by hand / {grade.max_score:g}"
    return f"{grade.points:g} / {grade.max_score:g}" + (" (graded by hand)" if grade.graded_by_hand else "")


def _status(grade: CellGrade | None) -> str:
    if grade is None or grade.pending:
        return "pending"
    return "pass" if grade.points >= grade.max_score else "fail"


def cell_anchor(index: int, grade_id: str) -> str:
    """The id of a cell's section: its position (unique) and its grade id reduced to safe characters
    (grade ids come from the notebook, which the student edited)."""
    return f"cell-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", grade_id)[:60]


def is_test_cell(cell: NotebookNode) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def named_function(cell: NotebookNode, messages: list[str], previous_answer: str) -> str:
    """The function a failing test is about: the one its failure message names, else the first one its
    visible checks name, else the answer cell just above it."""
    for message in messages:
        if match := MESSAGE_FUNCTION.match(message):
            return match["name"]
    if match := CHECK_CALL.search(visible_source(cell.source)):
        return match["name"]
    return previous_answer


def fix_first(nb: NotebookNode, grades: dict[str, CellGrade]) -> list[tuple[str, str, str, str]]:
    """The failing test cells in notebook order: (anchor, grade id, function, first line of the message)."""
    failing = []
    previous_answer = ""
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            previous_answer = str(meta.get("grade_id", ""))
        if not is_test_cell(cell):
            continue
        grade_id = str(meta.get("grade_id", ""))
        if _status(grades.get(grade_id)) != "fail":
            continue
        messages = failure_messages(cell)
        first = messages[0].strip().splitlines()[0] if messages and messages[0].strip() else "did not pass"
        failing.append((cell_anchor(index, grade_id), grade_id, named_function(cell, messages, previous_answer),
                        first[:200]))
    return failing


def fix_first_section(failing: list[tuple[str, str, str, str]]) -> str:
    if not failing:
        return ""
    items = "".join(
        f'<li><a href="#{html.escape(anchor)}"><code>{html.escape(function or grade_id)}</code></a> '
        f'(test <code>{html.escape(grade_id)}</code>): {html.escape(message)}</li>'
        for anchor, grade_id, function, message in failing[:MAX_FIX_FIRST])
    more = (f"<p>{len(failing) - MAX_FIX_FIRST} more failing test(s) below.</p>"
            if len(failing) > MAX_FIX_FIRST else "")
    return ('<section class="fix-first"><h2>What to fix first</h2><p>The failing tests, in the order of the '
            "notebook: an error early on often makes later tests fail too, so start at the top.</p>"
            f"<ol>{items}</ol>{more}</section>")


def _pre(text: str, css: str = "") -> str:
    return f'<pre class="{css}">{html.escape(text)}</pre>'


def render_cell(cell: NotebookNode, grade: CellGrade | None, anchor: str = "") -> str:
    meta = cell.metadata.get("nbgrader", {})
    grade_id = meta.get("grade_id", "")
    parts = []
    if is_test_cell(cell):
        title = f"Test <code>{html.escape(grade_id)}</code>"
        parts.append(_pre(visible_source(cell.source), "code"))
        messages = failure_messages(cell)
        if messages:
            parts += [_pre(message, "error") for message in messages]
        elif _status(grade) == "pass":
            parts.append('<p class="ok">All checks passed.</p>')
    elif meta.get("solution"):
        written = cell.cell_type != "code"
        kind = "Your written answer" if written else "Your answer"
        title = f"{kind} <code>{html.escape(grade_id)}</code>"
        parts.append(_pre(cell.source, "text" if written else "code"))
        parts += [_pre(message, "output") for message in student_messages(cell)]
    else:
        return ""
    score = _score_text(grade)
    header = f'<h2 class="{_status(grade) if score else ""}">{title}'
    header += f' <span class="score">{html.escape(score)}</span></h2>' if score else "</h2>"
    if grade is not None and grade.written and meta.get("grade"):
        if grade.pending:
            parts.append('<p class="manual">To be graded by hand: your instructor has not graded this answer '
                         "yet.</p>")
        else:
            parts.append(f'<p class="manual">Graded by hand: <b>{grade.points:g} / {grade.max_score:g}</b></p>')
    if grade is not None and grade.comment:
        who = "Instructor's comment" if grade.graded_by_hand or grade.written else "Comment"
        parts.append(f'<p class="comment">{who}: {html.escape(grade.comment)}</p>')
    where = f' id="{html.escape(anchor)}"' if anchor else ""
    return f'<section{where}>{header}{"".join(parts)}</section>'


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; white-space: pre-wrap; }
pre.error { background: #fdecea; color: #611a15; } pre.output { background: #eef; }
h2 .score { float: right; font-weight: normal; } h2.pass .score { color: #1a7f37; }
h2.fail .score { color: #b42318; } p.ok { color: #1a7f37; }
p.manual { color: #444; } section.fix-first { background: #fff8e1; padding: .2em 1em; }
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
    anchors: dict[str, str] = {}
    sections = []
    for index, cell in enumerate(nb.cells):
        grade_id = str(cell.metadata.get("nbgrader", {}).get("grade_id", ""))
        anchor = cell_anchor(index, grade_id) if grade_id else ""
        if grade_id:
            anchors.setdefault(grade_id, anchor)
        sections.append(render_cell(cell, grades.get(grade_id), anchor))

    def linked(grade_id: str) -> str:
        name = html.escape(grade_id)
        return f'<a href="#{html.escape(anchors[grade_id])}">{name}</a>' if grade_id in anchors else name

    rows = "".join(f"<tr><td>{linked(g.grade_id)}</td><td>{html.escape(_score_text(g))}</td></tr>"
                   for g in grades.values())
    pending = sum(1 for g in grades.values() if g.pending)
    manual = (f" {pending} written answer(s) still to be graded by hand: the score may go up." if pending else "")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(lab)} feedback"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(lab)}: feedback for "
            f"{html.escape(student)}</h1>{notice}<p>Score: <b>{total:g} / {max_total:g}</b>.{manual}</p>"
            f"{fix_first_section(fix_first(nb, grades))}<p>Failing tests show the message of the first failed "
            f"check; hidden tests run on random inputs and are not shown.</p>"
            f"<table><tr><th>cell</th><th>score</th></tr>{rows}</table>{''.join(sections)}</body></html>")


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
    from gradekit.lms.checks import course_at, require_gradebook_labs
    from gradekit.lms.gradebook import load_ungradable

    course = course_at(args.course)
    require_gradebook_labs(course, [args.lab])
    if args.student:
        known = ({p.parent.parent.name for p in course.autograded.glob(f"*/{args.lab}/*.ipynb")}
                 | set(grading_status(course, args.lab)) | set(load_ungradable(course, args.lab)))
        unknown = sorted(set(args.student) - known)
        if unknown:
            raise UsageError(f"--student: no graded or ungradable {args.lab} for {', '.join(map(repr, unknown))} "
                             f"(grade it first: python -m gradekit grade {args.lab})")
    pages = write_feedback(course, args.lab, args.student)
    print(f"wrote {len(pages)} feedback page(s) to {course.feedback}/<student>/{args.lab}/")
    return 0 if pages else 1
