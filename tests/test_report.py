"""report: index.html with the labs at a glance, a sortable per-student table, plots, pass rates, common
failures, status lists; grades.csv from the gradebook."""

from __future__ import annotations

import csv
import html
import json
import re
import statistics
import types
from html.parser import HTMLParser

import pytest
from nbgrader.api import Gradebook
from submissions.graded import graded_tiny_course
from submissions.tiny_lab import LAB, NOTEBOOK

from gradekit.commands import main as gradekit_main
from gradekit.course.directory import Course
from gradekit.course.status import StudentStatus
from gradekit.delivery.report import (
    PASS_SHARE,
    LabSummary,
    _status_section,
    exercise_of,
    exercise_rows,
    histogram_figure,
    item_rows,
    normalise_message,
)

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


NAME = "Ada <b>Lovelace</b>"

pytestmark = pytest.mark.xdist_group("report")  # module fixtures are built once, on one worker

@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def reported(tmp_path_factory) -> Course:
    course = graded_tiny_course(tmp_path_factory.mktemp("report"))
    with Gradebook(course.db_url) as gradebook:  # a manual grade for the written answer
        grade = gradebook.find_grade("answer_why", NOTEBOOK, LAB, "good")
        grade.manual_score = 1.0
        grade.needs_manual_grade = False
        gradebook.db.commit()
        gradebook.update_or_create_student("absent")  # in the class, never submitted
    (course.root / "reports" / LAB).mkdir(parents=True)
    (course.root / "reports" / LAB / "status.json").write_text(json.dumps(STATUS))
    # collect's record of who is who: the name comes from the LMS (and may hold markup)
    (course.root / "reports" / LAB / "lms.json").write_text(json.dumps(
        {"good": {"lms": "canvas", "user": "good", "name": NAME}}))
    assert gradekit_main(["report", "--course", str(course.root)]) == 0
    return course


@pytest.mark.slow
def test_grades_csv_matches_the_gradebook_with_manual_grades(reported):
    with (reported.root / "reports" / "grades.csv").open() as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    with Gradebook(reported.db_url) as gradebook:
        expected = {s.student.id: s.score for s in gradebook.assignment_submissions(LAB)}
    assert set(expected) <= set(rows)
    assert {student for student, row in rows.items() if row[LAB] == ""} == set(rows) - set(expected)
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


class Tables(HTMLParser):
    """Every <table> of a page: its header texts and its rows of cell texts (and the cells' attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class", ""), "headers": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self.cell = []
            self.kind = tag

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            text = "".join(self.cell).strip()
            table = self.tables[-1]
            (table["headers"] if self.kind == "th" else table["rows"][-1]).append(text)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(markup: str) -> dict[str, dict]:
    parser = Tables()
    parser.feed(markup)
    return {t["class"]: {"headers": t["headers"], "rows": [r for r in t["rows"] if r]} for t in parser.tables
            if t["class"]}


@pytest.mark.slow
def test_labs_at_a_glance_and_the_student_table_match_the_gradebook(reported):
    markup = (reported.root / "reports" / "index.html").read_text()
    found = tables(markup)
    with Gradebook(reported.db_url) as gradebook:
        maximum = gradebook.find_assignment(LAB).max_score
        students = sorted(s.id for s in gradebook.students)
        scored, pending = {}, set()
        for submission in gradebook.assignment_submissions(LAB):
            scored[submission.student.id] = submission.score - (submission.late_submission_penalty or 0)
            if submission.needs_manual_grade:
                pending.add(submission.student.id)
    status_only = {s["student"]: s["status"] for s in STATUS["students"] if s["student"] not in students}
    assert status_only == {"broken": "invalid", "slow": "timed out"}
    assert students == ["absent", "good", "partial", "wrong"] and pending == {"partial", "wrong"}

    # The student table: everyone, name from collect, score and status per lab, flags, pending by hand.
    table = found["sortable students"]
    assert table["headers"] == ["student", "name", f"{LAB} score", f"{LAB} status", "flags", "to grade by hand"]
    rows = {row[0]: dict(zip(table["headers"], row, strict=True)) for row in table["rows"]}
    assert sorted(rows) == sorted([*students, *status_only])
    for student in students:
        row = rows[student]
        if student in scored:
            assert float(row[f"{LAB} score"]) == pytest.approx(scored[student]), student
            assert row[f"{LAB} status"] == "graded"
        else:
            assert row[f"{LAB} score"] == "" and row[f"{LAB} status"] == "missing"
        assert (row["to grade by hand"] != "") == (student in pending), student
    assert rows["good"]["name"] == NAME and rows["wrong"]["name"] == ""
    assert rows["partial"]["flags"] == "cell 5 (sigmoid), line 2: rebinds `torch.allclose`"
    assert rows["broken"][f"{LAB} status"] == "invalid" and rows["slow"][f"{LAB} status"] == "timed out"
    # student text is escaped: the name is text in its cell, not markup
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in markup and NAME not in markup

    # The labs at a glance, recomputed from the gradebook.
    summary = found["summary"]
    line = dict(zip(summary["headers"], summary["rows"][0], strict=True))
    graded = [scored[s] for s in ("good", "partial", "wrong")]
    assert line["lab"] == LAB and float(line["points"]) == maximum
    assert int(line["students"]) == len(students) + len(status_only) == 6
    assert int(line["graded"]) == len(graded) == 3
    assert float(line["mean"]) == pytest.approx(statistics.fmean(graded), rel=1e-3)
    assert float(line["median"]) == pytest.approx(statistics.median(graded), rel=1e-3)
    assert int(line[f"passed (≥ {PASS_SHARE:.0%})"]) == sum(score >= PASS_SHARE * maximum for score in graded)
    assert (int(line["missing"]), int(line["invalid"]), int(line["timed out / crashed"])) == (1, 1, 1)
    assert int(line["flagged"]) == 1 and int(line["to grade by hand"]) == len(pending)
    assert "at least 50% of the lab's points" in markup


@pytest.mark.slow
def test_the_page_runs_only_its_own_sorting_script(reported):
    markup = (reported.root / "reports" / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", markup, re.DOTALL | re.IGNORECASE)
    assert len(scripts) == 1 and "table.sortable" in scripts[0] and "innerHTML" not in scripts[0]
    assert "on" + "error=" not in markup.lower() and "javascript:" not in markup.lower()
    # numeric sort keys: a missing score sorts below 0
    assert re.search(r'<tr data-student="absent"><td>absent</td><td></td><td data-sort="-1">', markup)


def test_histogram_axes_are_whole_numbers():
    summary = LabSummary("lab9", max_score=7.5, scores={f"s{i}": v for i, v in enumerate([0, 2.5, 2.5, 7.5, 6])})
    figure = histogram_figure(summary)
    figure.canvas.draw()
    axes = figure.axes[0]
    for ticks in (axes.get_xticks(), axes.get_yticks()):
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    edges = [patch.get_x() for patch in axes.patches]
    assert all(float(edge).is_integer() for edge in edges) and max(p.get_height() for p in axes.patches) == 2


def test_long_repair_lists_are_summarised_and_folded():
    status = [{"student": f"s{i:03}", "status": "graded", "flags": [],
               "repairs": [f"test cell 'test_{i % 7}' was deleted: re-inserted it from the release",
                           *(["cell 3: nbgrader metadata restored (by grade id)"] * (i % 2))]} for i in range(40)]
    summary = LabSummary("lab9", status={s["student"]: StudentStatus.from_dict(s) for s in status})
    section = _status_section(summary, [s["student"] for s in status])
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", section)))
    assert "60 repair(s) in 40 submission(s)" in text
    assert "40× test cell '…' was deleted: re-inserted it from the release" in text
    assert "20× cell #: nbgrader metadata restored (by grade id)" in text
    assert re.search(r"<details><summary>every repair, per student</summary>.*s039", section)  # folded: no `open`


# ---------------------------------------------------------------- item analysis


def test_test_cells_belong_to_the_longest_answer_they_name():
    lab1 = ["compute_gradients", "compute_gradients_v2", "sigmoid", "answer_empty_regions"]
    assert exercise_of("test_compute_gradients", lab1) == "compute_gradients"
    assert exercise_of("test_compute_gradients_v2", lab1) == "compute_gradients_v2"
    assert exercise_of("answer_empty_regions", lab1) == "answer_empty_regions"  # a written answer: its own
    lab2 = ["LogisticRegression1", "LogisticRegression2", "answer_why_identical"]
    assert exercise_of("test_LogisticRegression1_init", lab2) == "LogisticRegression1"
    assert exercise_of("test_LogisticRegression2_train_model2", lab2) == "LogisticRegression2"
    assert exercise_of("test_LogisticRegression3", lab2) == "test_LogisticRegression3"  # no answer: its own
    assert exercise_of("test_sigmoidal", ["sigmoid"]) == "test_sigmoidal"  # a prefix of a word is not a name


def test_item_rows_and_histogram_bins_from_a_summary():
    summary = LabSummary("lab9", cell_max={"test_a_init": 2.0, "test_a_fit": 3.0},
                         cell_scores={"test_a_init": [2.0, 0.0, 2.0, 2.0], "test_a_fit": [3.0, 3.0, 0.0, 1.5]},
                         exercise_cells={"a": ["test_a_init", "test_a_fit"]}, exercise_max={"a": 5.0},
                         exercise_scores={"a": [5.0, 3.0, 2.0, 3.5]})
    items = {row.cell: row for row in item_rows(summary)}
    assert (items["test_a_init"].exercise, items["test_a_init"].lost, items["test_a_init"].mean) == ("a", 1, 1.5)
    assert (items["test_a_fit"].lost, items["test_a_fit"].students, items["test_a_fit"].lost_share) == (2, 4, 0.5)
    (row,) = exercise_rows(summary)
    # a bin per whole point, the maximum its own: 3.5 counts with 3
    assert [(label, count) for label, count, _ in row.bins] == [("0", 0), ("1", 0), ("2", 1), ("3", 2), ("4", 0),
                                                                ("5", 1)]
    assert [height for _, _, height in row.bins] == [0, 0, 20, 40, 0, 20] and row.mean == pytest.approx(3.375)


def expected_item_analysis(course: Course) -> tuple[dict, dict]:
    """From nbgrader's gradebook directly: per test cell (max, students, mean, lost), per exercise (max, points)."""
    with Gradebook(course.db_url) as gradebook:
        notebook = gradebook.find_notebook(NOTEBOOK, LAB)
        maxima = {cell.name: cell.max_score for cell in notebook.grade_cells}
        tests = [cell.name for cell in notebook.grade_cells if cell.cell_type == "code"]
        answers = [cell.name for cell in notebook.solution_cells]
        owner = {cell: next((a for a in answers if cell in (a, f"test_{a}")), cell) for cell in maxima}
        cell_points: dict[str, list[float]] = {cell: [] for cell in tests}
        exercise_points: dict[str, list[float]] = {a: [] for a in set(owner.values())}
        for submission in gradebook.assignment_submissions(LAB):
            grades = gradebook.find_submission_notebook(NOTEBOOK, LAB, submission.student.id).grades
            if all(g.auto_score is None and g.manual_score is None for g in grades):
                continue
            for grade in grades:
                if grade.name in cell_points:
                    cell_points[grade.name].append(grade.score)
            for exercise in exercise_points:
                mine = [g for g in grades if owner[g.name] == exercise]
                if not any(g.needs_manual_grade for g in mine):
                    exercise_points[exercise].append(sum(g.score for g in mine))
    items = {cell: (maxima[cell], len(points), statistics.fmean(points), sum(p < maxima[cell] for p in points))
             for cell, points in cell_points.items()}
    exercises = {exercise: (sum(maxima[c] for c in maxima if owner[c] == exercise), points)
                 for exercise, points in exercise_points.items()}
    return items, exercises


@pytest.mark.slow
def test_item_analysis_matches_the_gradebook(reported):
    markup = (reported.root / "reports" / "index.html").read_text()
    items, exercises = expected_item_analysis(reported)
    table = tables(markup)["items"]
    assert table["headers"] == ["test cell", "exercise", "points", "mean points", "lost points", "students"]
    shown = {row[0]: row for row in table["rows"]}
    assert sorted(shown) == sorted(items)
    for cell, (maximum, students, mean, lost) in items.items():
        row = shown[cell]
        assert row[1] == cell.removeprefix("test_") and float(row[2]) == maximum
        assert float(row[3]) == pytest.approx(mean, rel=1e-3) and int(row[5]) == students
        assert row[4] == f"{lost} ({100 * lost / students:.0f}%)"
    assert items["test_mean_std"][3] == 2  # the Bessel mistake: two students lost points

    found = tables(markup)["exercises"]
    assert sorted(row[0] for row in found["rows"]) == sorted(exercises) == ["answer_why", "mean_std", "sigmoid"]
    for exercise, (maximum, points) in exercises.items():
        row = re.search(rf'<tr data-exercise="{exercise}">(.*?)</tr>', markup, re.DOTALL).group(1)
        bins = [(int(low), int(count)) for low, count in
                re.findall(r'data-points="(\d+)" data-count="(\d+)"', row)]
        assert bins == [(k, sum(1 for p in points if k <= p < k + 1)) for k in range(int(maximum) + 1)], exercise
        line = dict(zip(found["headers"], next(r for r in found["rows"] if r[0] == exercise), strict=True))
        assert float(line["points"]) == maximum and int(line["students"]) == len(points)
    assert len(exercises["answer_why"][1]) == 1  # only `good` has the written answer graded by hand
    assert markup.count('src="data:image/png;base64,') == 2  # bars in the page: no image, no script added


def test_the_similarity_page_is_linked_when_gradekit_similarity_wrote_it():
    from gradekit.delivery.report import LabSummary, render_index

    summary = LabSummary("lab1", max_score=1.0, scores={"s1": 1.0}, similarity=True)
    assert 'href="lab1/similarity.html"' in render_index(["s1"], {"lab1": summary})
    summary.similarity = False
    assert "similarity.html" not in render_index(["s1"], {"lab1": summary})


@pytest.mark.parametrize(("max_score", "scores", "expected"), [
    (20, [20.0, 19.0, 19.0], {19: 2, 20: 1}),  # a point per bar: full marks apart from one below
    (3, [3.0, 2.0, 0.0], {0: 1, 2: 1, 3: 1}),
    (45, [45.0, 44.0, 40.0], {40: 1, 44: 2}),  # two points per bar: 44 and 45 share one, as 40 and 41 would
])
def test_the_score_histogram_bars_count_each_score_once_and_full_marks_apart(max_score, scores, expected):
    summary = types.SimpleNamespace(lab="lab1", max_score=max_score,
                                    scores={f"s{i}": score for i, score in enumerate(scores)})
    figure = histogram_figure(summary)
    bars = {round(patch.get_x()): int(patch.get_height()) for patch in figure.axes[0].patches if patch.get_height()}
    assert bars == expected and sum(bars.values()) == len(scores)
