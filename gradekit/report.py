"""`report`: the instructor's overview (reports/index.html) and reports/grades.csv.

Per lab: the score distribution, the pass rate of every test cell, the most common failure
messages per test cell (numbers normalised, counted: what to explain in the next lecture) and
the submissions that needed attention (repaired, invalid, timed out, crashed, flagged, from
reports/<lab>/status.json written by `grade`). Scores come from nbgrader's gradebook, so manual
grades are included.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from gradekit.course import Course
from gradekit.safe_text import csv_safe

NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
TOP_MESSAGES = 5


@dataclass
class LabSummary:
    lab: str
    max_score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)  # student -> total score
    cell_max: dict[str, float] = field(default_factory=dict)  # test cell -> points
    cell_scores: dict[str, list[float]] = field(default_factory=dict)  # test cell -> scores
    failures: dict[str, Counter] = field(default_factory=dict)  # test cell -> normalised message counts
    status: list[dict] = field(default_factory=list)


def normalise_message(message: str) -> str:
    """One line per kind of mistake: first line of the message, numbers replaced by '#'."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return NUMBER.sub("#", first)[:300]


def read_gradebook(course: Course, labs: list[str]) -> tuple[list[str], dict[str, LabSummary]]:
    from nbgrader.api import Gradebook

    summaries = {}
    with Gradebook(course.db_url) as gradebook:
        students = sorted(s.id for s in gradebook.students)
        for lab in labs:
            summary = LabSummary(lab)
            assignment = gradebook.find_assignment(lab)
            summary.max_score = float(assignment.max_score)
            for notebook in assignment.notebooks:
                for cell in notebook.grade_cells:
                    if cell.cell_type == "code":
                        summary.cell_max[cell.name] = float(cell.max_score)
                        summary.cell_scores[cell.name] = []
            for submission in gradebook.assignment_submissions(lab):
                # nbgrader's export subtracts the late penalty the same way
                penalty = float(submission.late_submission_penalty or 0)
                summary.scores[submission.student.id] = max(0.0, float(submission.score) - penalty)
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        if grade.name in summary.cell_scores:
                            summary.cell_scores[grade.name].append(float(grade.score or 0))
            summaries[lab] = summary
    return students, summaries


def read_failures(course: Course, summary: LabSummary) -> None:
    """Count the failure messages of every test cell over the autograded notebooks."""
    from gradekit.feedback import failure_messages

    for path in sorted(course.autograded.glob(f"*/{summary.lab}/*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # a damaged output file must not stop the report
            continue
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in summary.cell_max:
                for message in failure_messages(cell):
                    summary.failures.setdefault(grade_id, Counter())[normalise_message(message)] += 1


def read_status(course: Course, summary: LabSummary) -> None:
    path = course.root / "reports" / summary.lab / "status.json"
    if path.is_file():
        summary.status = json.loads(path.read_text()).get("students", [])


def write_grades_csv(path: Path, students: list[str], summaries: dict[str, LabSummary]) -> None:
    """student, one column per lab (empty when not submitted), total of the submitted labs."""
    labs = list(summaries)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *labs, "total"])
        for student in students:
            scores = [summaries[lab].scores.get(student) for lab in labs]
            total = sum(score for score in scores if score is not None)
            # Student ids are folder names under submitted/: `=HYPERLINK(...)` must stay text.
            writer.writerow([csv_safe(student), *("" if s is None else f"{s:g}" for s in scores), f"{total:g}"])


# ---------------------------------------------------------------- plots


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def score_histogram(summary: LabSummary) -> str:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 2.8))
    values = list(summary.scores.values())
    top = max(summary.max_score, max(values, default=0), 1)
    axes.hist(values, bins=min(20, max(5, int(top))), range=(0, top), color="#4c72b0", edgecolor="white")
    axes.set_xlabel(f"score (out of {summary.max_score:g})")
    axes.set_ylabel("students")
    axes.set_title(f"{summary.lab}: score distribution ({len(values)} submissions)")
    return _png(figure)


def pass_rates(summary: LabSummary) -> dict[str, float]:
    return {cell: (sum(s >= summary.cell_max[cell] for s in scores) / len(scores) if scores else 0.0)
            for cell, scores in summary.cell_scores.items()}


def pass_rate_chart(summary: LabSummary) -> str:
    import matplotlib.pyplot as plt

    rates = pass_rates(summary)
    figure, axes = plt.subplots(figsize=(5, 0.35 * len(rates) + 1))
    names = list(rates)[::-1]
    axes.barh(names, [100 * rates[n] for n in names], color="#55a868")
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of submissions with full marks")
    axes.set_title(f"{summary.lab}: pass rate per test cell")
    return _png(figure)


# ---------------------------------------------------------------- HTML

STATUS_GROUPS = [("invalid", "Invalid submissions"), ("timed out", "Timed out"), ("crashed", "Crashed"),
                 ("missing", "Missing")]


def _status_section(summary: LabSummary) -> str:
    if not summary.status:
        return f"<p><i>No reports/{html.escape(summary.lab)}/status.json (graded without gradekit grade).</i></p>"
    parts = []
    for status, title in STATUS_GROUPS:
        rows = [s for s in summary.status if s.get("status") == status]
        if rows:
            items = "".join(f"<li>{html.escape(str(s.get('student')))}: {html.escape(str(s.get('reason') or ''))}"
                            "</li>" for s in rows)
            parts.append(f"<h4>{title} ({len(rows)})</h4><ul>{items}</ul>")
    for key, title in (("repairs", "Repaired"), ("flags", "Flagged for possible tampering")):
        rows = [s for s in summary.status if s.get(key)]
        if rows:
            items = "".join(f"<li>{html.escape(str(s.get('student')))}<ul>"
                            + "".join(f"<li>{html.escape(str(line))}</li>" for line in s[key]) + "</ul></li>"
                            for s in rows)
            parts.append(f"<h4>{title} ({len(rows)})</h4><ul>{items}</ul>")
    return "".join(parts) or "<p>Every submission graded cleanly.</p>"


def _failures_section(summary: LabSummary) -> str:
    rates = pass_rates(summary)
    rows = []
    for cell in summary.cell_max:
        counts = summary.failures.get(cell, Counter())
        common = "".join(f"<li><b>{count}&times;</b> <code>{html.escape(message)}</code></li>"
                         for message, count in counts.most_common(TOP_MESSAGES))
        rows.append(f"<tr><td><code>{html.escape(cell)}</code></td><td>{100 * rates.get(cell, 0):.0f}%</td>"
                    f"<td><ul>{common}</ul></td></tr>")
    return ("<table><tr><th>test cell</th><th>pass rate</th><th>most common failure messages</th></tr>"
            + "".join(rows) + "</table>")


def render_index(students: list[str], summaries: dict[str, LabSummary]) -> str:
    sections = []
    for summary in summaries.values():
        images = "".join(f'<img alt="{alt}" src="data:image/png;base64,{data}">' for alt, data in
                         (("score distribution", score_histogram(summary)),
                          ("pass rate per test cell", pass_rate_chart(summary))))
        sections.append(f"<section><h2>{html.escape(summary.lab)}</h2><p>{len(summary.scores)} graded "
                        f"submission(s), maximum {summary.max_score:g} points.</p>{images}"
                        f"<h3>Failures per test cell</h3>{_failures_section(summary)}"
                        f"<h3>Submissions that need attention</h3>{_status_section(summary)}</section>")
    style = ("body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "td,th{padding:.2em .8em;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}"
             "table{border-collapse:collapse}img{margin:.5em}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Course report</title>"
            f"<style>{style}</style></head><body><h1>Course report</h1><p>{len(students)} student(s); "
            f"grades in <a href=\"grades.csv\">grades.csv</a>.</p>{''.join(sections)}</body></html>")


def write_report(course: Course, labs: list[str] | None = None) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    labs = labs or _graded_labs(course)
    students, summaries = read_gradebook(course, labs)
    for summary in summaries.values():
        read_failures(course, summary)
        read_status(course, summary)
    reports = course.root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    grades = reports / "grades.csv"
    write_grades_csv(grades, students, summaries)
    index = reports / "index.html"
    index.write_text(render_index(students, summaries), encoding="utf-8")
    return index, grades


def _graded_labs(course: Course) -> list[str]:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        return sorted(a.name for a in gradebook.assignments)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to report (default: every lab in the gradebook)")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")


def main(args: argparse.Namespace) -> int:
    from gradekit.course import repo_course

    course = Course(args.course.resolve()) if args.course else repo_course()
    if not course.has_gradebook():
        print(f"no gradebook at {course.db_display}: grade a lab first")
        return 1
    index, grades = write_report(course, args.labs)
    print(f"wrote {index} and {grades}")
    return 0
