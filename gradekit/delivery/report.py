"""`report`: the instructor's overview (reports/index.html) and reports/grades.csv.

At the top, per lab: how many students, how many were graded, mean and median score, how many
passed (at least PASS_SHARE of the lab's points), and how many are missing, invalid, timed out or
crashed, flagged, or wait for written answers to be graded by hand. Then one row per student (id,
name from the LMS, score and status per lab, flags, answers to grade by hand), sortable by clicking
a column header. Then per lab: the score distribution, the pass rate of every test cell, the most
common failure messages per test cell (numbers normalised, counted: what to explain in the next
lecture), the item analysis (per test cell the share of students who lost points and the mean points;
per exercise, an answer cell with its test cells, a small histogram of the points) and the submissions
that needed attention (repaired, invalid, timed out, crashed, flagged, from reports/<lab>/status.json
written by `grade`), long lists summarised and folded away.

Scores come from nbgrader's gradebook (late penalties subtracted, manual grades included).
Everything a student wrote (ids, names, messages, flags) is HTML-escaped: the page is a Jinja2 template
with autoescape (templates/report.html.j2 and report_parts.html.j2, through `gradekit.delivery.pages`). The
page's only script is the template's sorting script, which moves rows and reads text, never markup.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from gradekit.course.cells import grade_id_of
from gradekit.course.checks import gradebook_labs
from gradekit.course.collected import load_state
from gradekit.course.directory import Course
from gradekit.course.files import atomic_open, write_text
from gradekit.course.ledger import outdated
from gradekit.course.roster import load_roster
from gradekit.course.safe_text import csv_safe
from gradekit.course.status import Status, StudentStatus, read_status
from gradekit.delivery import pages
from gradekit.delivery.feedback import failure_messages
from gradekit.scoring.ungradable import load_ungradable

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
    status: dict[str, StudentStatus] = field(default_factory=dict)  # the last grading run, per student
    collected: set[str] = field(default_factory=set)  # students with a submission row, graded or not
    pending_manual: dict[str, int] = field(default_factory=dict)  # student -> answers to grade by hand
    ungradable: dict[str, dict] = field(default_factory=dict)  # recorded by `grade` (gradekit.scoring.late)
    outdated: dict[str, str] = field(default_factory=dict)  # student -> why the stored grade is not current
    # An exercise is an answer cell's grade id; its grade cells are its test cells (`exercise_of`), or the
    # answer itself when it is graded (a written answer). Points: per graded student, those with no cell of
    # the exercise waiting for a hand grade.
    exercise_cells: dict[str, list[str]] = field(default_factory=dict)
    exercise_max: dict[str, float] = field(default_factory=dict)
    exercise_scores: dict[str, list[float]] = field(default_factory=dict)
    similarity: bool = False  # `gradekit similarity` wrote reports/<lab>/similarity.html: linked from the page

    def state(self, student: str) -> str:
        """graded, timed out, crashed, invalid, missing, not graded yet, outdated (or grade's own word)."""
        entry = self.status.get(student)
        if student in self.outdated:  # the ledger: a stored grade of something else than what is submitted now
            return "outdated"
        # An ungradable record newer than status.json (feedback and the LMS export read it the same way).
        if student in self.ungradable and (entry is None or entry.status != Status.GRADED):
            return "invalid"
        if entry is not None and entry.status and (entry.status != Status.GRADED or student in self.scores):
            return str(entry.status)  # the last grading run's word (a regrade of some students updates it)
        if student in self.scores:
            return "graded"
        if student in self.collected:
            return "not graded yet"
        return "missing"

    def flags(self, student: str) -> list[str]:
        entry = self.status.get(student)
        return list(entry.flags) if entry is not None else []


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
    outdated: int  # graded, but on another submission or other tests than now: regrade
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


def exercise_of(cell: str, answers: Iterable[str]) -> str:
    """The exercise a grade cell belongs to: an answer cell is its own; test cell `test_<x>` or `test_<x>_...`
    belongs to answer `<x>`, the longest that fits (`test_compute_gradients_v2` is `compute_gradients_v2`'s,
    not `compute_gradients`'s); a test cell no answer fits is an exercise of its own."""
    answers = set(answers)
    if cell in answers or not cell.startswith("test_"):
        return cell
    tested = cell.removeprefix("test_")
    fits = [answer for answer in answers if tested == answer or tested.startswith(f"{answer}_")]
    return max(fits, key=len, default=cell)


def read_gradebook(course: Course, labs: list[str]) -> tuple[list[str], dict[str, LabSummary]]:

    summaries = {}
    with course.open_gradebook() as gradebook:
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
                answers = [cell.name for cell in notebook.solution_cells]
                for cell in notebook.grade_cells:
                    exercise = exercise_of(cell.name, answers)
                    summary.exercise_cells.setdefault(exercise, []).append(cell.name)
                    summary.exercise_max[exercise] = summary.exercise_max.get(exercise, 0.0) + float(cell.max_score)
                    summary.exercise_scores.setdefault(exercise, [])
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
                by_name = {grade.name: grade for grade in grades}
                for exercise, cells in summary.exercise_cells.items():
                    found = [by_name[cell] for cell in cells if cell in by_name]
                    # A written answer not graded by hand yet has no points to show (0 would be a guess).
                    if found and not any(grade.needs_manual_grade for grade in found):
                        summary.exercise_scores[exercise].append(sum(float(grade.score or 0) for grade in found))
            summaries[lab] = summary
    return students, summaries


def read_failures(course: Course, summary: LabSummary) -> None:
    """Count the failure messages of every test cell over the autograded notebooks."""

    for path in sorted(course.autograded.glob(f"*/{summary.lab}/*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # a damaged output file must not stop the report
            continue
        for cell in nb.cells:
            grade_id = grade_id_of(cell)
            if grade_id in summary.cell_max:
                for message in failure_messages(cell):
                    summary.failures.setdefault(grade_id, Counter())[normalise_message(message)] += 1


def read_grading_status(course: Course, summary: LabSummary) -> None:
    summary.status = read_status(course, summary.lab).students
    summary.ungradable = load_ungradable(course, summary.lab)
    summary.outdated = outdated(course, summary.lab)


def class_list(course: Course, gradebook_students: list[str], summaries: dict[str, LabSummary]) -> list[str]:
    """Every student the course knows: the gradebook's, the LMS roster's, and anyone a lab's grading or
    collecting saw (a student without a submission is still in the class, as missing)."""

    students = set(gradebook_students)
    roster = load_roster(course.root, list(summaries))
    if roster:
        students |= set(roster.students)
    for summary in summaries.values():
        students |= set(summary.status)
        students |= set(summary.ungradable) | set(load_state(course, summary.lab))
    return sorted(students)


def display_names(course: Course, students: list[str], labs: list[str]) -> dict[str, str]:
    """student -> name as the LMS gave it (collect's state, then the roster, then the gradebook)."""


    names: dict[str, str] = {}
    with course.open_gradebook() as gradebook:
        for student in gradebook.students:
            full = " ".join(part for part in (student.first_name, student.last_name) if part)
            if full:
                names[student.id] = full
    roster = load_roster(course.root, labs)
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
        outdated=sum(1 for state in states.values() if state == "outdated"),
        invalid=sum(1 for state in states.values() if state == "invalid"),
        timed_out_or_crashed=sum(1 for state in states.values() if state in ("timed out", "crashed")),
        flagged=sum(1 for student in students if summary.flags(student)),
        pending_manual=sum(1 for student in students if summary.pending_manual.get(student)))


def write_grades_csv(path: Path, students: list[str], summaries: dict[str, LabSummary]) -> None:
    """student, one column per lab (empty when not graded), total of the graded labs."""
    labs = list(summaries)
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *labs, "total"])
        for student in students:
            # An outdated grade is not this student's grade of what they submitted: empty, like not graded.
            scores = [None if summaries[lab].state(student) == "outdated" else summaries[lab].scores.get(student)
                      for lab in labs]
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
    # +1, as `point_bins`: the maximum gets a bar of its own (matplotlib's last bin is closed, [low, high], so
    # edges ending at the maximum put it with the point below).
    edges = histogram_edges(summary.max_score + 1, max(values, default=0) + 1)
    axes.hist(values, bins=edges, color="#4c72b0", edgecolor="white")
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


# ---------------------------------------------------------------- item analysis

BAR_PX = 40  # height of the tallest bar of an exercise's histogram


@dataclass(frozen=True)
class ItemRow:
    """One test cell: its exercise, points, and over the graded submissions the mean points and how many
    students lost points on it."""

    cell: str
    exercise: str
    max_score: float
    students: int
    mean: float | None
    lost: int

    @property
    def lost_share(self) -> float:
        return self.lost / self.students if self.students else 0.0


@dataclass(frozen=True)
class ExerciseRow:
    """One exercise: its grade cells, points, and the students per points value (`bins`: label, count,
    bar height in pixels)."""

    exercise: str
    cells: list[str]
    max_score: float
    students: int
    mean: float | None
    bins: list[tuple[str, int, int]]


def item_rows(summary: LabSummary) -> list[ItemRow]:
    exercise = {cell: name for name, cells in summary.exercise_cells.items() for cell in cells}
    return [ItemRow(cell, exercise.get(cell, cell), summary.cell_max[cell], len(scores),
                    statistics.fmean(scores) if scores else None,
                    sum(1 for score in scores if score < summary.cell_max[cell]))
            for cell, scores in summary.cell_scores.items()]


def point_bins(values: list[float], max_score: float) -> list[tuple[str, int]]:
    """Students per points value: a bin per whole point from 0 to the maximum (wider for many points, as the
    lab's histogram: `histogram_edges`), each bin [low, high)."""
    edges = histogram_edges(max_score + 1, max(values, default=0) + 1)  # +1: the maximum gets a bin of its own
    return [(f"{low}" if high - low == 1 else f"{low}-{high - 1}", sum(1 for v in values if low <= v < high))
            for low, high in zip(edges, edges[1:], strict=False)]


def exercise_rows(summary: LabSummary) -> list[ExerciseRow]:
    rows = []
    for exercise, cells in summary.exercise_cells.items():
        scores = summary.exercise_scores.get(exercise, [])
        bins = point_bins(scores, summary.exercise_max[exercise])
        tallest = max((count for _, count in bins), default=0) or 1
        rows.append(ExerciseRow(exercise, cells, summary.exercise_max[exercise], len(scores),
                                statistics.fmean(scores) if scores else None,
                                [(label, count, max(1, round(BAR_PX * count / tallest)) if count else 0)
                                 for label, count in bins]))
    return rows


# ---------------------------------------------------------------- HTML

STATUS_GROUPS = [("outdated", "Outdated grades (regrade: gradekit grade LAB --outdated)"),
                 ("invalid", "Invalid submissions"), ("timed out", "Timed out"), ("crashed", "Crashed"),
                 ("missing", "Missing")]

def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _summary_lines(summaries: dict[str, LabSummary], counts: dict[str, LabCounts]) -> list[tuple]:
    """The labs at a glance, per lab: (lab, points, LabCounts, mean, median)."""
    return [(lab, summary.max_score, counts[lab], _number(counts[lab].mean), _number(counts[lab].median))
            for lab, summary in summaries.items()]


def summary_table(summaries: dict[str, LabSummary], counts: dict[str, LabCounts]) -> str:
    return pages.macro("report_parts.html.j2", "summary_table")(_summary_lines(summaries, counts),
                                                               f"{PASS_SHARE:.0%}")


def _student_rows(students: list[str], names: dict[str, str],
                  summaries: dict[str, LabSummary]) -> tuple[list[str], list[tuple]]:
    """The student table's headers, and per student: (id, name, [(score, status)] per lab, flags, pending)."""
    labs = list(summaries)
    headers = ["student", "name", *(f"{lab} {what}" for lab in labs for what in ("score", "status")),
               "flags", "to grade by hand"]
    rows = []
    for student in students:
        flags: list[str] = []
        pending: list[str] = []
        for lab in labs:
            summary = summaries[lab]
            flags += summary.flags(student)
            if summary.pending_manual.get(student):
                pending.append(f"{lab}: {summary.pending_manual[student]}")
        rows.append((student, names.get(student, ""),
                     [(summaries[lab].scores.get(student), summaries[lab].state(student)) for lab in labs],
                     flags, pending))
    return headers, rows


def student_table(students: list[str], names: dict[str, str], summaries: dict[str, LabSummary]) -> str:
    return pages.macro("report_parts.html.j2", "student_table")(*_student_rows(students, names, summaries))


def _status_view(summary: LabSummary, students: list[str]) -> dict:
    """What the `status_section` macro shows: the students per status group (with the reason), the repairs
    (counted by kind) and the flags."""
    if not summary.status and not summary.collected:
        return {"no_status": True, "lab": summary.lab}
    reasons = {s.student: s.reason for s in summary.status.values()} | summary.outdated
    for student, record in summary.ungradable.items():
        reasons.setdefault(student, str(record.get("reason", "")))
    groups = []
    for status, title in STATUS_GROUPS:
        rows = [student for student in students if summary.state(student) == status]
        if rows:
            default = "no submission" if status == "missing" else ""
            groups.append((title, [(student, reasons.get(student) or default) for student in rows]))
    repaired = [s for s in summary.status.values() if s.repairs]
    kinds = Counter(repair_kind(line) for s in repaired for line in s.repairs)
    return {"no_status": False, "lab": summary.lab, "open_up_to": OPEN_UP_TO, "groups": groups,
            "repaired": repaired, "repair_total": sum(kinds.values()), "common_repairs": kinds.most_common(TOP_KINDS),
            "other_repair_kinds": max(0, len(kinds) - TOP_KINDS),
            "flagged": [s for s in summary.status.values() if s.flags]}


def _status_section(summary: LabSummary, students: list[str]) -> str:
    return pages.macro("report_parts.html.j2", "status_section")(_status_view(summary, students))


def _failure_rows(summary: LabSummary) -> list[tuple[str, float, list[tuple[str, int]]]]:
    """Per test cell: (grade id, pass rate, most common failure messages with their counts)."""
    rates = pass_rates(summary)
    return [(cell, rates.get(cell, 0), summary.failures.get(cell, Counter()).most_common(TOP_MESSAGES))
            for cell in summary.cell_max]


def _failures_section(summary: LabSummary) -> str:
    return pages.macro("report_parts.html.j2", "failures_section")(_failure_rows(summary))


def runtime_counts(summary: LabSummary) -> list[tuple[str, int]]:
    """The kernel runtimes the lab's notebooks ran in, with how many each (more than one: runs before and after
    the course's runtime changed), commonest first."""
    counts = Counter(entry.runtime for entry in summary.status.values() if entry.runtime)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def render_index(students: list[str], summaries: dict[str, LabSummary], names: dict[str, str] | None = None) -> str:
    names = names or {}
    counts = {lab: lab_counts(summary, students) for lab, summary in summaries.items()}
    headers, rows = _student_rows(students, names, summaries)
    # The charts are base64 PNGs we drew (letters, digits, + / =): plain strings, which escaping leaves as they are.
    labs = [{"name": summary.lab, "graded": len(summary.scores), "max_score": summary.max_score,
             "images": [("score distribution", score_histogram(summary)),
                        ("pass rate per test cell", pass_rate_chart(summary))],
             "failures": _failure_rows(summary), "status": _status_view(summary, students),
             "item_analysis": item_rows(summary), "exercises": exercise_rows(summary),
             "similarity": summary.similarity, "runtimes": runtime_counts(summary)}
            for summary in summaries.values()]
    return pages.render("report.html.j2", student_count=len(students), lines=_summary_lines(summaries, counts),
                        pass_share=f"{PASS_SHARE:.0%}", headers=headers, rows=rows, labs=labs)


def graded_labs(course: Course) -> list[str]:

    return gradebook_labs(course)


def write_report(course: Course, labs: list[str] | None = None) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    labs = labs or graded_labs(course)
    gradebook_students, summaries = read_gradebook(course, labs)
    for summary in summaries.values():
        read_failures(course, summary)
        read_grading_status(course, summary)
        summary.similarity = (course.lab_reports(summary.lab) / "similarity.html").is_file()
    students = class_list(course, gradebook_students, summaries)
    names = display_names(course, students, labs)
    reports = course.reports
    reports.mkdir(parents=True, exist_ok=True)
    grades = reports / "grades.csv"
    write_grades_csv(grades, students, summaries)
    index = reports / "index.html"
    write_text(index, render_index(students, summaries, names))
    return index, grades


