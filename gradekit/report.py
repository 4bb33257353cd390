"""`report`: the instructor's overview (reports/index.html) and reports/grades.csv.

At the top, per lab: how many students, how many were graded, mean and median score, how many
passed (at least PASS_SHARE of the lab's points), and how many are missing, invalid, timed out or
crashed, flagged, or wait for written answers to be graded by hand. Then one row per student (id,
name from the LMS, score and status per lab, flags, answers to grade by hand), sortable by clicking
a column header. Then per lab: the score distribution, the pass rate of every test cell, the most
common failure messages per test cell (numbers normalised, counted: what to explain in the next
lecture) and the submissions that needed attention (repaired, invalid, timed out, crashed, flagged,
from reports/<lab>/status.json written by `grade`), long lists summarised and folded away.

Scores come from nbgrader's gradebook (late penalties subtracted, manual grades included).
Everything a student wrote (ids, names, messages, flags) is HTML-escaped; the page's only script
is the sorting below, which moves rows and reads text, never markup.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import math
import re
import statistics
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from gradekit.course import Course
from gradekit.safe_text import csv_safe

NUMBER = re.compile(r"(?<![A-Za-z_])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`")
TOP_MESSAGES = 5
TOP_KINDS = 3
OPEN_UP_TO = 10  # a list of at most this many students is shown unfolded
PASS_SHARE = 0.5  # a lab is passed with at least half of its points
SCORED = ("graded", "timed out", "crashed")  # the notebook ran: its score says what the student achieved


@dataclass
class LabSummary:
    lab: str
    max_score: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)  # student -> total score (graded submissions)
    cell_max: dict[str, float] = field(default_factory=dict)  # test cell -> points
    cell_scores: dict[str, list[float]] = field(default_factory=dict)  # test cell -> scores
    failures: dict[str, Counter] = field(default_factory=dict)  # test cell -> normalised message counts
    status: list[dict] = field(default_factory=list)
    collected: set[str] = field(default_factory=set)  # students with a submission row, graded or not
    pending_manual: dict[str, int] = field(default_factory=dict)  # student -> answers to grade by hand
    ungradable: dict[str, dict] = field(default_factory=dict)  # recorded by `grade` (gradekit.lms.gradebook)

    def state(self, student: str) -> str:
        """graded, timed out, crashed, invalid, missing, not graded yet (or grade's own word, e.g. grader error)."""
        entry = next((s for s in self.status if s.get("student") == student), None)
        # An ungradable record newer than status.json (feedback and the LMS export read it the same way).
        if student in self.ungradable and (entry is None or entry.get("status") != "graded"):
            return "invalid"
        if entry is not None and entry.get("status") and (entry["status"] != "graded" or student in self.scores):
            return str(entry["status"])  # the last grading run's word (a regrade of some students updates it)
        if student in self.scores:
            return "graded"
        if student in self.collected:
            return "not graded yet"
        return "missing"

    def flags(self, student: str) -> list[str]:
        return [str(f) for s in self.status if s.get("student") == student for f in (s.get("flags") or [])]


@dataclass
class LabCounts:
    """The line of the summary table for one lab."""

    students: int
    graded: int  # graded, timed out or crashed: the notebook ran and has a score
    mean: float | None
    median: float | None
    passed: int  # of the graded, those with at least PASS_SHARE of the points
    missing: int
    not_graded_yet: int
    invalid: int
    timed_out_or_crashed: int
    flagged: int
    pending_manual: int  # students with at least one written answer not graded by hand yet


def normalise_message(message: str) -> str:
    """One line per kind of mistake: first line of the message, numbers replaced by '#'."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return NUMBER.sub("#", first)[:300]


def repair_kind(line: str) -> str:
    """What kind of repair a line reports: quoted names and numbers left out, so that 'test cell
    'test_sigmoid' was deleted' and 'test cell 'test_softmax' was deleted' count as one kind."""
    return NUMBER.sub("#", QUOTED.sub("'…'", str(line).strip().splitlines()[0] if str(line).strip() else ""))[:200]


def read_gradebook(course: Course, labs: list[str]) -> tuple[list[str], dict[str, LabSummary]]:
    from nbgrader.api import Gradebook

    summaries = {}
    with warnings.catch_warnings(), Gradebook(course.db_url) as gradebook:
        warnings.simplefilter("ignore")  # SQLAlchemy notes from nbgrader's lazy loading
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
                student = submission.student.id
                summary.collected.add(student)
                grades = [g for notebook in submission.notebooks for g in notebook.grades]
                # `collect` registers submissions before grading: no score yet is not a score of 0.
                if not any(g.auto_score is not None or g.manual_score is not None for g in grades):
                    continue
                # nbgrader's export subtracts the late penalty the same way
                penalty = float(submission.late_submission_penalty or 0)
                summary.scores[student] = max(0.0, float(submission.score) - penalty)
                pending = sum(1 for g in grades if g.needs_manual_grade)
                if pending:
                    summary.pending_manual[student] = pending
                for grade in grades:
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
    from gradekit.lms.gradebook import load_ungradable

    path = course.root / "reports" / summary.lab / "status.json"
    if path.is_file():
        try:
            summary.status = [s for s in json.loads(path.read_text()).get("students", []) if isinstance(s, dict)]
        except (ValueError, AttributeError):  # a damaged status file: the gradebook still has the scores
            summary.status = []
    summary.ungradable = load_ungradable(course, summary.lab)


def class_list(course: Course, gradebook_students: list[str], summaries: dict[str, LabSummary]) -> list[str]:
    """Every student the course knows: the gradebook's, the LMS roster's, and anyone a lab's grading or
    collecting saw (a student without a submission is still in the class, as missing)."""
    from gradekit.collect import load_state
    from gradekit.lms.identity import load_roster

    students = set(gradebook_students)
    roster = load_roster(course.root)
    if roster:
        students |= set(roster.students)
    for summary in summaries.values():
        students |= {str(s["student"]) for s in summary.status if s.get("student")}
        students |= set(summary.ungradable) | set(load_state(course, summary.lab))
    return sorted(students)


def display_names(course: Course, students: list[str], labs: list[str]) -> dict[str, str]:
    """student -> name as the LMS gave it (collect's state, then the roster, then the gradebook)."""
    from nbgrader.api import Gradebook

    from gradekit.collect import load_state
    from gradekit.lms.identity import load_roster

    names: dict[str, str] = {}
    with warnings.catch_warnings(), Gradebook(course.db_url) as gradebook:
        warnings.simplefilter("ignore")
        for student in gradebook.students:
            full = " ".join(part for part in (student.first_name, student.last_name) if part)
            if full:
                names[student.id] = full
    roster = load_roster(course.root)
    for student, identity in (roster.students.items() if roster else []):
        if identity.name:
            names[student] = identity.name
    for lab in labs:
        for student, record in load_state(course, lab).items():
            if record.get("name"):
                names[student] = str(record["name"])
    return {student: names[student] for student in students if student in names}


def lab_counts(summary: LabSummary, students: list[str]) -> LabCounts:
    states = {student: summary.state(student) for student in students}
    scored = [summary.scores[s] for s, state in states.items() if state in SCORED and s in summary.scores]
    return LabCounts(
        students=len(students), graded=len(scored),
        mean=statistics.fmean(scored) if scored else None, median=statistics.median(scored) if scored else None,
        passed=sum(1 for score in scored if score >= PASS_SHARE * summary.max_score),
        missing=sum(1 for state in states.values() if state == "missing"),
        not_graded_yet=sum(1 for state in states.values() if state == "not graded yet"),
        invalid=sum(1 for state in states.values() if state == "invalid"),
        timed_out_or_crashed=sum(1 for state in states.values() if state in ("timed out", "crashed")),
        flagged=sum(1 for student in students if summary.flags(student)),
        pending_manual=sum(1 for student in students if summary.pending_manual.get(student)))


def write_grades_csv(path: Path, students: list[str], summaries: dict[str, LabSummary]) -> None:
    """student, one column per lab (empty when not graded), total of the graded labs."""
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


def histogram_edges(max_score: float, top_score: float = 0.0) -> list[int]:
    """Bin edges on whole points (a bin per point, wider for a lab of many points): counts per score are read
    off an integer axis, and no bin straddles two point values."""
    top = max(1, math.ceil(max(max_score, top_score)))
    width = max(1, math.ceil(top / 25))
    return list(range(0, top + width, width))


def histogram_figure(summary: LabSummary):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(figsize=(5, 2.8))
    values = list(summary.scores.values())
    axes.hist(values, bins=histogram_edges(summary.max_score, max(values, default=0)), color="#4c72b0",
              edgecolor="white")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # points and students are whole numbers
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(f"score (out of {summary.max_score:g})")
    axes.set_ylabel("students")
    axes.set_title(f"{summary.lab}: score distribution ({len(values)} submissions)")
    return figure


def score_histogram(summary: LabSummary) -> str:
    return _png(histogram_figure(summary))


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

# Sorts a table.sortable by the clicked column: numbers by value (a cell's data-sort), text otherwise.
# It only reorders rows and reads textContent/attributes: no student text is ever parsed as markup.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (header, column) {
    header.addEventListener("click", function () {
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var key = function (row) {
        var cell = row.cells[column];
        return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
      };
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _folded(title: str, count: int, body: str, summary_line: str = "") -> str:
    """A titled list, unfolded when short, folded into <details> when long."""
    opened = " open" if count <= OPEN_UP_TO else ""
    return (f"<h4>{title} ({count})</h4>{summary_line}"
            f"<details{opened}><summary>{'details' if opened else f'show all {count}'}</summary>{body}</details>")


def summary_table(summaries: dict[str, LabSummary], counts: dict[str, LabCounts]) -> str:
    headers = ["lab", "points", "students", "graded", "mean", "median", f"passed (≥ {PASS_SHARE:.0%})", "missing",
               "not graded yet", "invalid", "timed out / crashed", "flagged", "to grade by hand"]
    rows = []
    for lab, summary in summaries.items():
        c = counts[lab]
        cells = [_e(lab), f"{summary.max_score:g}", c.students, c.graded, _number(c.mean), _number(c.median),
                 c.passed, c.missing, c.not_graded_yet, c.invalid, c.timed_out_or_crashed, c.flagged,
                 c.pending_manual]
        rows.append(f'<tr data-lab="{_e(lab)}">' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return ('<table class="summary"><thead><tr>' + "".join(f"<th>{h}</th>" for h in headers)
            + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<p class=\"note\">graded: the notebook ran (graded, timed out or crashed), late penalties subtracted; "
            f"mean, median and passed are over those. Passed: at least {PASS_SHARE:.0%} of the lab's points. "
            "Missing, invalid and not-yet-graded work is counted apart. To grade by hand: students with a written "
            "answer that waits for the formgrader.</p>")


def student_table(students: list[str], names: dict[str, str], summaries: dict[str, LabSummary]) -> str:
    labs = list(summaries)
    headers = ["student", "name", *(f"{lab} {what}" for lab in labs for what in ("score", "status")),
               "flags", "to grade by hand"]
    rows = []
    for student in students:
        cells = [f"<td>{_e(student)}</td>", f"<td>{_e(names.get(student, ''))}</td>"]
        flags: list[str] = []
        pending: list[str] = []
        for lab in labs:
            summary = summaries[lab]
            score = summary.scores.get(student)
            cells.append(f'<td data-sort="{-1 if score is None else score:g}">'
                         f"{'' if score is None else f'{score:g}'}</td>")
            cells.append(f'<td class="status">{_e(summary.state(student))}</td>')
            flags += summary.flags(student)
            if summary.pending_manual.get(student):
                pending.append(f"{lab}: {summary.pending_manual[student]}")
        cells.append(f'<td data-sort="{len(flags)}" title="{_e("; ".join(flags))}">'
                     f"{_e('; '.join(flags)) if flags else ''}</td>")
        cells.append(f'<td data-sort="{len(pending)}">{_e(", ".join(pending))}</td>')
        rows.append(f'<tr data-student="{_e(student)}">{"".join(cells)}</tr>')
    return ('<table class="sortable students"><thead><tr>'
            + "".join(f'<th title="click to sort">{_e(h)}</th>' for h in headers)
            + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _status_section(summary: LabSummary, students: list[str]) -> str:
    if not summary.status and not summary.collected:
        return f"<p><i>No reports/{_e(summary.lab)}/status.json (graded without gradekit grade).</i></p>"
    parts = []
    reasons = {str(s.get("student")): str(s.get("reason") or "") for s in summary.status}
    for student, record in summary.ungradable.items():
        reasons.setdefault(student, str(record.get("reason", "")))
    for status, title in STATUS_GROUPS:
        rows = [student for student in students if summary.state(student) == status]
        if rows:
            default = "no submission" if status == "missing" else ""
            items = "".join(f"<li>{_e(student)}: {_e(reasons.get(student) or default)}</li>" for student in rows)
            parts.append(_folded(title, len(rows), f"<ul>{items}</ul>"))
    repaired = [s for s in summary.status if s.get("repairs")]
    if repaired:
        kinds = Counter(repair_kind(line) for s in repaired for line in s["repairs"])
        total = sum(kinds.values())
        common = "".join(f"<li><b>{count}&times;</b> {_e(kind)}</li>" for kind, count in kinds.most_common(TOP_KINDS))
        more = f"<li>and {len(kinds) - TOP_KINDS} other kind(s)</li>" if len(kinds) > TOP_KINDS else ""
        items = "".join(f"<li>{_e(s.get('student'))}<ul>" + "".join(f"<li>{_e(line)}</li>" for line in s["repairs"])
                        + "</ul></li>" for s in repaired)
        # Repairs are routine (Colab loses metadata): the counts matter, the details are folded away.
        parts.append(f"<h4>Repaired ({len(repaired)})</h4><p>{total} repair(s) in {len(repaired)} submission(s); "
                     f"most common:</p><ul class=\"kinds\">{common}{more}</ul><details><summary>every repair, per "
                     f"student</summary><ul>{items}</ul></details>")
    flagged = [s for s in summary.status if s.get("flags")]
    if flagged:
        items = "".join(f"<li>{_e(s.get('student'))}<ul>" + "".join(f"<li>{_e(line)}</li>" for line in s["flags"])
                        + "</ul></li>" for s in flagged)
        parts.append(_folded("Flagged for possible tampering", len(flagged), f"<ul>{items}</ul>"))
    return "".join(parts) or "<p>Every submission graded cleanly.</p>"


def _failures_section(summary: LabSummary) -> str:
    rates = pass_rates(summary)
    rows = []
    for cell in summary.cell_max:
        counts = summary.failures.get(cell, Counter())
        common = "".join(f"<li><b>{count}&times;</b> <code>{_e(message)}</code></li>"
                         for message, count in counts.most_common(TOP_MESSAGES))
        rows.append(f"<tr><td><code>{_e(cell)}</code></td><td>{100 * rates.get(cell, 0):.0f}%</td>"
                    f"<td><ul>{common}</ul></td></tr>")
    return ("<table><tr><th>test cell</th><th>pass rate</th><th>most common failure messages</th></tr>"
            + "".join(rows) + "</table>")


def render_index(students: list[str], summaries: dict[str, LabSummary], names: dict[str, str] | None = None) -> str:
    names = names or {}
    counts = {lab: lab_counts(summary, students) for lab, summary in summaries.items()}
    sections = []
    for summary in summaries.values():
        images = "".join(f'<img alt="{alt}" src="data:image/png;base64,{data}">' for alt, data in
                         (("score distribution", score_histogram(summary)),
                          ("pass rate per test cell", pass_rate_chart(summary))))
        sections.append(f"<section><h2>{_e(summary.lab)}</h2><p>{len(summary.scores)} graded "
                        f"submission(s), maximum {summary.max_score:g} points.</p>{images}"
                        f"<h3>Failures per test cell</h3>{_failures_section(summary)}"
                        f"<h3>Submissions that need attention</h3>{_status_section(summary, students)}</section>")
    style = ("body{font-family:system-ui,sans-serif;max-width:80em;margin:2em auto;padding:0 1em}"
             "td,th{padding:.2em .8em;border-bottom:1px solid #ddd;vertical-align:top;text-align:left}"
             "table{border-collapse:collapse}img{margin:.5em}table.sortable th{cursor:pointer}"
             "th[aria-sort=ascending]::after{content:' ▲'}th[aria-sort=descending]::after{content:' ▼'}"
             "p.note{color:#555;font-size:90%}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Course report</title>"
            f"<style>{style}</style></head><body><h1>Course report</h1><p>{len(students)} student(s); "
            f"grades in <a href=\"grades.csv\">grades.csv</a>.</p><h2>Labs at a glance</h2>"
            f"{summary_table(summaries, counts)}<h2>Students</h2><p class=\"note\">Click a column header to sort."
            f"</p>{student_table(students, names, summaries)}{''.join(sections)}"
            f"<script>{SORT_SCRIPT}</script></body></html>")


def write_report(course: Course, labs: list[str] | None = None) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    labs = labs or _graded_labs(course)
    gradebook_students, summaries = read_gradebook(course, labs)
    for summary in summaries.values():
        read_failures(course, summary)
        read_status(course, summary)
    students = class_list(course, gradebook_students, summaries)
    names = display_names(course, students, labs)
    reports = course.root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    grades = reports / "grades.csv"
    write_grades_csv(grades, students, summaries)
    index = reports / "index.html"
    index.write_text(render_index(students, summaries, names), encoding="utf-8")
    return index, grades


def _graded_labs(course: Course) -> list[str]:
    from gradekit.lms.checks import gradebook_labs

    return gradebook_labs(course)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to report (default: every lab in the gradebook)")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")


def main(args: argparse.Namespace) -> int:
    from gradekit.lms.checks import course_at, require_gradebook_labs

    course = course_at(args.course)
    labs = require_gradebook_labs(course, args.labs)  # no gradebook, or a lab it does not know: exit 2
    index, grades = write_report(course, labs)
    print(f"wrote {index} and {grades}")
    return 0
