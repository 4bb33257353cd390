"""Feedback as a notebook: the student's own graded notebook, with the verdict under each graded cell.

Why a notebook: Canvas attaches a re-uploaded feedback file to the submission comment under the name of
the file the student submitted (`Assignment#infer_comment_context_from_filename` returns the submitted
attachment's display name, which `generate_comments_from_files` gives the comment's file), so the student
downloads `lab1_logistic_regression.ipynb`: it must be a notebook, which opens in Colab where they worked.

What it holds: the autograded notebook with every hidden-test region cut out (the course's nbgrader
delimiters), errors reduced to their message lines (no traceback frame quoting a test), and, first, a
summary cell, then a verdict cell after each graded cell: points, and the failure messages. Student text
in the verdicts is quoted as code, so that nothing in it renders as Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import grade_id_of
from gradekit.course.status import Status, StudentStatus

if TYPE_CHECKING:
    from gradekit.delivery.feedback import CellGrade

NOTICES = {"invalid": "could not be graded", "timed out": "was stopped: it ran out of time",
           "crashed": "stopped before the end", "missing": "was not found"}


def _points(value: float) -> str:
    return f"{round(value, 2):g}"


def _quoted(lines: list[str]) -> str:
    """Lines shown literally: in a fenced block whose fence no line can close."""
    text = "\n".join(lines)
    fence = "`" * max(3, 1 + max((len(run) for run in text.split() if set(run) == {"`"}), default=0))
    return f"{fence}text\n{text}\n{fence}"


def status_text(entry: StudentStatus | None) -> str:
    if not entry or entry.status == Status.GRADED:
        return ""
    if entry.status == "outdated":
        return (f"Your latest submission has not been graded yet ({entry.reason}). This feedback will come once "
                "it is graded; no grade from an earlier submission is sent for it.")
    what = NOTICES.get(entry.status, str(entry.status))
    return (f"Your submission {what}: {entry.reason}. Cells that did not run score 0. Fix the problem, check "
            "that the notebook runs top to bottom (Runtime > Run all), and submit again if you still can.")


def _verdict(grade: CellGrade, messages: list[str]) -> NotebookNode:
    title = grade.grade_id
    if grade.written:
        text = (f"**Feedback: {title}**: to be graded by hand" if grade.pending else
                f"**Feedback: {title}**: {_points(grade.points)} / {_points(grade.max_score)}")
    elif grade.points >= grade.max_score:
        text = f"**Feedback: {title}**: {_points(grade.points)} / {_points(grade.max_score)}, every check passed"
    else:
        text = f"**Feedback: {title}**: {_points(grade.points)} / {_points(grade.max_score)}"
        if messages:
            text += "\n\n" + _quoted(messages)
    if grade.comment.strip():
        text += "\n\nComment:\n\n" + _quoted(grade.comment.strip().splitlines())
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["gradekit"] = {"feedback": True}
    return cell


def feedback_notebook(nb: NotebookNode, grades: dict[str, CellGrade], total: float, max_total: float, lab: str,
                      messages_of: Callable[[NotebookNode], list[str]], notice: str = "",
                      penalty: float = 0.0) -> NotebookNode:
    """`nb`: the autograded notebook with its hidden tests already cut out (`feedback.hide_hidden_tests`);
    `messages_of(cell)`: a test cell's failure messages (`feedback.failure_messages`)."""
    summary = [f"# Feedback on {lab}: {_points(max(0.0, total - penalty))} / {_points(max_total)}"]
    if penalty:
        summary.append(f"Late: {_points(penalty)} point(s) deducted from {_points(total)}.")
    if notice:
        summary.append(_quoted([notice]))
    failing = [g for g in grades.values() if not g.written and g.points < g.max_score]
    if failing:
        summary.append("What to fix first: " + ", ".join(f"`{g.grade_id}`" for g in failing[:5]) + ".")
    summary.append("Each graded cell is followed by its points and what its checks said. The hidden tests "
                   "ran at grading time on other inputs; they are not in this notebook.")
    first = nbformat.v4.new_markdown_cell("\n\n".join(summary))
    first.metadata["gradekit"] = {"feedback": True}
    cells = [first]
    for cell in nb.cells:
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):  # message lines only: a traceback frame may quote a test
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        cells.append(cell)
        grade = grades.get(grade_id_of(cell))
        if grade is not None:
            cells.append(_verdict(grade, messages_of(cell) if cell.cell_type == "code" else []))
    result = nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)
    return result


def notice_notebook(lab: str, notice: str, max_total: float | None) -> NotebookNode:
    """For a submission with no graded notebook (it could not be graded): why, and the score."""
    score = f": 0 / {_points(max_total)}" if max_total is not None else ""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        f"# Feedback on {lab}{score}\n\n{_quoted([notice])}")])
