"""`feedback`: one HTML page per student and lab, without the hidden tests.

nbgrader's own feedback shows the full test cells and tracebacks, which quote hidden test lines.
Here a page opens with "What to fix first" (the failing test cells in notebook order, each with the
function it names and a link to the cell below), then shows, per graded cell: the score (from the
gradebook), the student's own code, the visible part of each test cell, for a failing test only
`ename: evalue` (e.g. the CheckFailed message with its hint), and for written answers the points
and comment the instructor gave by hand ("to be graded by hand" only while they have not).
Everything is HTML-escaped: student code is untrusted. The pages are Jinja2 templates with autoescape
(templates/feedback.html.j2, notice.html.j2, feedback_parts.html.j2, through `gradekit.delivery.pages`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from gradekit.course.cells import NBGRADER_DEFAULTS, Delimiters, grade_id_of, is_test_cell, nbgrader_meta
from gradekit.course.directory import Course
from gradekit.course.files import write_text
from gradekit.course.ledger import outdated
from gradekit.course.safe_text import multiline_safe
from gradekit.course.status import Status, StudentStatus, read_status
from gradekit.delivery import pages
from gradekit.delivery.feedback_notebook import feedback_notebook, notice_notebook, status_text
from gradekit.scoring.ungradable import load_ungradable

WARNING_LINE = re.compile(r"\b(\w+(?:Warning|Error)): (.*)$", re.MULTILINE)
MAX_MESSAGE_CHARS = 2000
MAX_FIX_FIRST = 5  # "What to fix first" stays short: the first failures in notebook order
# `CheckFailed: mean_std (std): wrong value` / `sigmoid: is not written yet`: the function the check names.
MESSAGE_FUNCTION = re.compile(r"^(?:\w+: )?(?P<name>[A-Za-z_][\w.]*)(?: \([^)\n]*\))?: ")
CHECK_CALL = re.compile(r"\bcheck_\w+\(\s*[\"'](?P<name>[A-Za-z_][\w.]*)")


def visible_source(source: str, delimiters: Delimiters = NBGRADER_DEFAULTS) -> str:
    """A test cell's source without its hidden tests (an unterminated block is cut to the end). The course's
    delimiters, matched in any case: a student's own marker may hide more on this page, never less."""
    return delimiters.hidden_regions(ignore_case=True).sub("# (hidden tests run here)\n", source).rstrip()


def hide_hidden_tests(nb: NotebookNode, delimiters: Delimiters) -> None:
    """Every cell's hidden-test regions replaced by a note, before anything of the notebook is shown."""
    for cell in nb.cells:
        if delimiters.begin_hidden.lower() in cell.source.lower():
            cell.source = visible_source(cell.source, delimiters)


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
        hide_hidden_tests(nb, Delimiters.from_config(self.config))  # the course's nbgrader settings
        for cell in nb.cells:
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
    from nbgrader.api import MissingEntry

    with course.open_gradebook() as gradebook:
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


def late_penalty(course: Course, lab: str, student: str) -> float:
    """nbgrader's late penalty of the student's submission (what the LMS export subtracts), 0 when none."""
    from nbgrader.api import MissingEntry

    with course.open_gradebook() as gradebook:
        try:
            return float(gradebook.find_submission(lab, student).late_submission_penalty or 0.0)
        except MissingEntry:
            return 0.0


def _grade_ids_in_order(course: Course, lab: str, notebook: str) -> list[str]:
    """The grade ids of the lab's notebook, top to bottom (from the release students got)."""
    path = course.release / lab / f"{notebook}.ipynb"
    if not path.is_file():
        return []
    cells = nbformat.read(path, as_version=4).cells
    return [grade_id_of(c) for c in cells if "grade_id" in nbgrader_meta(c)]


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
        meta = nbgrader_meta(cell)
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


def _cell_view(cell: NotebookNode, grade: CellGrade | None, anchor: str = "") -> dict | None:
    """What the `cell` macro shows of a graded cell (plain values: the template escapes them); None for a cell
    that is neither a test nor an answer."""
    meta = nbgrader_meta(cell)
    blocks: list[tuple[str, str]] = []  # (text, css class of its <pre>)
    passed = False
    if is_test_cell(cell):
        kind = "Test"
        blocks.append((visible_source(cell.source), "code"))
        messages = failure_messages(cell)
        if messages:
            blocks += [(message, "error") for message in messages]
        else:
            passed = _status(grade) == "pass"
    elif meta.get("solution"):
        written = cell.cell_type != "code"
        kind = "Your written answer" if written else "Your answer"
        blocks.append((cell.source, "text" if written else "code"))
        blocks += [(message, "output") for message in student_messages(cell)]
    else:
        return None
    manual = ""
    if grade is not None and grade.written and meta.get("grade"):
        manual = "pending" if grade.pending else f"{grade.points:g} / {grade.max_score:g}"
    comment = grade.comment if grade is not None else ""
    comment_by = ("Instructor's comment" if grade is not None and (grade.graded_by_hand or grade.written)
                  else "Comment")
    return {"anchor": anchor, "kind": kind, "grade_id": meta.get("grade_id", ""), "score": _score_text(grade),
            "status": _status(grade), "blocks": blocks, "passed": passed, "manual": manual, "comment": comment,
            "comment_by": comment_by}


def render_cell(cell: NotebookNode, grade: CellGrade | None, anchor: str = "") -> str:
    view = _cell_view(cell, grade, anchor)
    return "" if view is None else pages.macro("feedback_parts.html.j2", "cell")(view)


def grading_status(course: Course, lab: str) -> dict[str, StudentStatus]:
    """student -> their entry of the last grading run (`gradekit.course.status`), if any."""
    return read_status(course, lab).students


def _status_of(entry: StudentStatus | None) -> str:
    return entry.status if entry is not None else ""


def status_notice(entry: StudentStatus | None) -> str:
    """What a student must know when their notebook was not graded normally (Markup, the reason escaped)."""
    if not entry or entry.status == Status.GRADED:
        return ""
    if entry.status == "outdated":
        return pages.macro("feedback_parts.html.j2", "notice")("outdated", entry.reason)
    what = {"invalid": "could not be graded", "timed out": "was stopped: it ran out of time",
            "crashed": "stopped before the end", "missing": "was not found"}.get(entry.status, entry.status)
    return pages.macro("feedback_parts.html.j2", "notice")(what, entry.reason)


def notice_page(student: str, lab: str, notice: str, max_total: float | None = None) -> str:
    """`notice` is status_notice's Markup (a plain string would be shown as text)."""
    return pages.render("notice.html.j2", student=student, lab=lab, notice=notice, max_total=max_total)


def _max_score(course: Course, lab: str) -> float | None:
    if not course.has_gradebook():
        return None
    from nbgrader.api import MissingEntry

    with course.open_gradebook() as gradebook:
        try:
            return float(gradebook.find_assignment(lab).max_score)
        except MissingEntry:
            return None


def render_page(nb: NotebookNode, grades: dict[str, CellGrade], total: float, max_total: float,
                student: str, lab: str, notice: str = "", penalty: float = 0.0, runtime: str = "") -> str:
    """The whole page; `notice` is status_notice's Markup (a plain string would be shown as text); `runtime`
    the kernel runtime the notebook ran in (`KernelRuntime.label`)."""
    anchors: dict[str, str] = {}
    cells = []
    for index, cell in enumerate(nb.cells):
        grade_id = str(nbgrader_meta(cell).get("grade_id", ""))
        anchor = cell_anchor(index, grade_id) if grade_id else ""
        if grade_id:
            anchors.setdefault(grade_id, anchor)
        view = _cell_view(cell, grades.get(grade_id), anchor)
        if view is not None:
            cells.append(view)
    failing = fix_first(nb, grades)
    return pages.render(
        "feedback.html.j2", lab=lab, student=student, notice=notice, total=total, max_total=max_total,
        penalty=penalty, runtime=runtime,
        pending=sum(1 for g in grades.values() if g.pending),
        failing=failing[:MAX_FIX_FIRST], more_failing=max(0, len(failing) - MAX_FIX_FIRST),
        rows=[(g.grade_id, anchors.get(g.grade_id, ""), _score_text(g)) for g in grades.values()], cells=cells)


def write_feedback(course: Course, lab: str, students: list[str] | None = None) -> list[Path]:
    """Write feedback/<student>/<lab>/<notebook>.html for every autograded student, and the same feedback as a
    notebook beside it (`<notebook>.ipynb`: `gradekit.delivery.feedback_notebook`); returns the pages."""

    notebook = course.notebook_name(lab) if course.source.joinpath(lab).is_dir() else None
    statuses = grading_status(course, lab)
    # A submission recorded as ungradable (0 points) after the last status.json was written.
    for student, record in load_ungradable(course, lab).items():
        if _status_of(statuses.get(student)) != Status.GRADED:
            statuses[student] = StudentStatus(student, Status.INVALID, str(record.get("reason", "")))
    # The ledger: feedback on an earlier submission (or earlier tests) is not this submission's feedback.
    for student, why in outdated(course, lab).items():
        statuses[student] = StudentStatus(student, "outdated", why)
    pages = []
    delimiters = Delimiters.of(course)
    for path in sorted(course.autograded.glob(f"*/{lab}/*.ipynb")):
        student = path.parent.parent.name
        if (students and student not in students) or _status_of(statuses.get(student)) in (Status.INVALID, "outdated"):
            continue  # an old notebook of a student whose latest submission could not be graded: stale
        name = notebook or path.stem
        nb = nbformat.read(path, as_version=4)
        hide_hidden_tests(nb, delimiters)
        grades, total, max_total = gradebook_grades(course, lab, name, student)
        page = course.feedback / student / lab / f"{name}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        notice = status_notice(statuses.get(student))
        penalty = late_penalty(course, lab, student)  # what the student reads is what the LMS gets
        entry = statuses.get(student)
        write_text(page, render_page(nb, grades, total, max_total, student, lab, notice, penalty,
                                     entry.runtime if entry else ""))
        write_text(page.with_suffix(".ipynb"), nbformat.writes(feedback_notebook(
            nb, grades, total, max_total, lab, failure_messages, status_text(statuses.get(student)), penalty)))
        pages.append(page)
    graded = {page.parent.parent.name for page in pages}
    max_total = _max_score(course, lab)
    for student, entry in sorted(statuses.items()):
        # Invalid submissions have no autograded notebook: the page says why.
        if student in graded or (students and student not in students) or entry.status == Status.GRADED:
            continue
        page = course.feedback / student / lab / f"{notebook or lab}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        zero = max_total if entry.status == Status.INVALID else None  # invalid work scores 0 (record_ungradable)
        write_text(page, notice_page(student, lab, status_notice(entry), zero))
        write_text(page.with_suffix(".ipynb"), nbformat.writes(notice_notebook(lab, status_text(entry), zero)))
        pages.append(page)
    return pages


