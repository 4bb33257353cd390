"""What a regrade changed: `gradekit grade` records per student and test cell the scores before and after
(reports/<lab>/regrade-<time>.csv, a one-line summary), and `gradekit lms grades` refuses to lower a grade
already exported unless told `--accept`.

No notebook runs here: the gradebook is filled with nbgrader's own API, before and after, as a grading run
(a hidden test that changed) would leave it. The grade command runs with its grading step replaced by
those writes, so that what it snapshots, compares, writes and prints is the real thing.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from gradekit.commands import grade as grade_command
from gradekit.commands import main as gradekit_main
from gradekit.course.directory import Course
from gradekit.course.status import Status, StudentStatus
from gradekit.delivery.lms_export import EXPORTED_RECORD
from gradekit.grading.run import GradeRun
from gradekit.scoring.regrade import CSV_HEADER, RegradeDiff, diff, snapshot, write_csv

LAB, NOTEBOOK = "lab9", "lab9_logistic"
TEST_CELLS = {"test_sigmoid": 4.0, "test_mean_std": 3.0}
WRITTEN = "answer_why"  # graded by hand: not a test cell, never in the snapshot

# Before: everyone graded on the old hidden tests. After: the new hidden test of sigmoid catches `wrong_sign`
# (-4) and `partial` (-4), and `late` loses 3 on mean_std after a fix; `fixed` now passes mean_std (+3);
# `steady` does not move; `newcomer` is graded for the first time.
BEFORE = {"steady": {"test_sigmoid": 4, "test_mean_std": 3},
          "wrong_sign": {"test_sigmoid": 4, "test_mean_std": 3},
          "partial": {"test_sigmoid": 4, "test_mean_std": 0},
          "fixed": {"test_sigmoid": 4, "test_mean_std": 0},
          "late": {"test_sigmoid": 0, "test_mean_std": 3}}
AFTER = {**BEFORE,
         "wrong_sign": {"test_sigmoid": 0, "test_mean_std": 3},
         "partial": {"test_sigmoid": 0, "test_mean_std": 0},
         "fixed": {"test_sigmoid": 4, "test_mean_std": 3},
         "late": {"test_sigmoid": 0, "test_mean_std": 0},
         "newcomer": {"test_sigmoid": 4, "test_mean_std": 0}}
MOVED = [  # every (student, cell, before, after, change) row the CSV must hold, in its order
    ("fixed", "test_mean_std", "0", "3", "3"),
    ("late", "test_mean_std", "3", "0", "-3"),
    ("newcomer", "test_mean_std", "", "0", "0"),
    ("newcomer", "test_sigmoid", "", "4", "4"),
    ("partial", "test_sigmoid", "4", "0", "-4"),
    ("wrong_sign", "test_sigmoid", "4", "0", "-4"),
]


@pytest.fixture(scope="module")
def empty_course(tmp_path_factory) -> Course:
    """A course as `require_lab` wants it (source, release, the lab in the gradebook), with no notebook to run
    and nobody graded; built once (a new gradebook costs seconds: nbgrader runs alembic on it)."""
    saved = os.environ["PATH"]
    # nbgrader's Gradebook runs the `alembic` script on a new database: the venv's bin/ must be on PATH.
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + saved
    try:
        return build_course(tmp_path_factory.mktemp("regrade") / "course")
    finally:
        os.environ["PATH"] = saved


@pytest.fixture
def course(empty_course, tmp_path) -> Course:
    """A copy of `empty_course` of this test's own."""
    return Course(Path(shutil.copytree(empty_course.root, tmp_path / "course")))


def build_course(root: Path) -> Course:
    for folder in ("source", "release"):
        path = root / folder / LAB / f"{NOTEBOOK}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), path)
    course = Course(root)
    with Gradebook(course.db_url) as gradebook:
        gradebook.add_assignment(LAB)
        gradebook.add_notebook(NOTEBOOK, LAB)
        for cell, points in TEST_CELLS.items():
            gradebook.add_grade_cell(cell, NOTEBOOK, LAB, max_score=points, cell_type="code")
        gradebook.add_grade_cell(WRITTEN, NOTEBOOK, LAB, max_score=2, cell_type="markdown")
    return course


@contextmanager
def opened(course: Course) -> Iterator[Gradebook]:
    with warnings.catch_warnings(), Gradebook(course.db_url) as gradebook:
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's add_submission (plain nbgrader too)
        yield gradebook


def fill(course: Course, scores: dict[str, dict[str, float]], written: float | None = 1.0) -> None:
    """Autograded scores as nbgrader's SaveAutoGrades leaves them (and a hand grade of the written answer)."""
    with opened(course) as gradebook:
        for student, cells in scores.items():
            gradebook.update_or_create_student(student)
            try:
                submission = gradebook.find_submission(LAB, student)
            except Exception:  # noqa: BLE001 - nbgrader's MissingEntry: a first submission
                submission = gradebook.add_submission(LAB, student)
            for grade in submission.notebooks[0].grades:
                if grade.name in cells:
                    grade.auto_score, grade.needs_manual_grade = float(cells[grade.name]), False
                elif grade.name == WRITTEN:
                    grade.manual_score, grade.needs_manual_grade = written, written is None
        gradebook.db.commit()


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# ---------------------------------------------------------------- the diff itself


def test_the_diff_names_exactly_the_movers_and_the_newly_graded(course):
    fill(course, BEFORE)
    before = snapshot(course.db_url, LAB)
    assert before == {(s, c): float(v) for s, cells in BEFORE.items() for c, v in cells.items()}  # no hand grade
    fill(course, AFTER, written=2.0)  # a hand grade changed too: not a test cell, not in the diff
    with Gradebook(course.db_url) as gradebook:  # a Gradebook already open works as well as a URL
        after = snapshot(gradebook, LAB)
    regrade = diff(before, after)
    assert [(r.student, r.cell, r.before, r.after) for r in regrade.rows] == \
        [(s, c, float(b) if b else None, float(a)) for s, c, b, a, _ in MOVED]
    assert regrade.first_graded == ["newcomer"]
    assert regrade.movers() == {"fixed": 3.0, "late": -3.0, "partial": -4.0, "wrong_sign": -4.0}
    assert regrade.summary() == ("4 students moved: 1 up, 3 down, largest \u22124 on test_sigmoid; "
                                 "1 student graded for the first time")


def test_a_manual_override_counts_and_ungraded_cells_are_not_zeros(course):
    fill(course, {"steady": {"test_sigmoid": 0, "test_mean_std": 3}})
    with opened(course) as gradebook:
        gradebook.update_or_create_student("collected")
        gradebook.add_submission(LAB, "collected")  # registered by `collect`, not graded: no score at all
        grade = gradebook.find_grade("test_sigmoid", NOTEBOOK, LAB, "steady")
        grade.manual_score = 2.5  # the instructor's override wins over the autograder's 0 (nbgrader's `score`)
        gradebook.db.commit()
    assert snapshot(course.db_url, LAB) == {("steady", "test_sigmoid"): 2.5, ("steady", "test_mean_std"): 3.0}


def test_a_first_grading_says_only_how_many_were_graded():
    regrade = diff({}, {(s, c): float(v) for s, cells in BEFORE.items() for c, v in cells.items()})
    assert regrade.movers() == {} and regrade.first_graded == sorted(BEFORE)
    assert regrade.summary() == "5 students graded for the first time"
    assert diff({("a", "t"): 1.0}, {("a", "t"): 1.0}).summary() == "no test-cell score changed"


def test_ups_and_downs_that_cancel_are_a_move_neither_up_nor_down():
    regrade = diff({("a", "t1"): 1.0, ("a", "t2"): 0.0, ("b", "t1"): 0.0},
                   {("a", "t1"): 0.0, ("a", "t2"): 1.0, ("b", "t1"): 2.0})
    assert regrade.summary() == "2 students moved: 1 up, 0 down, 1 even, largest +2 on t1"


def test_the_csv_is_whole_text_safe_and_never_replaced_by_a_second_run(tmp_path):
    regrade = diff({("=HYPERLINK(1)", "test_sigmoid"): 4.0}, {("=HYPERLINK(1)", "test_sigmoid"): 1.5})
    first = write_csv(regrade, tmp_path / "reports" / LAB)
    second = write_csv(RegradeDiff(), tmp_path / "reports" / LAB)
    assert first.name.startswith("regrade-") and first.name.endswith("Z.csv") and second != first
    assert read_rows(first) == [CSV_HEADER, ["'=HYPERLINK(1)", "test_sigmoid", "4", "1.5", "-2.5"]]
    assert read_rows(second) == [CSV_HEADER]
    assert not list(first.parent.glob(".*partial"))  # written beside, renamed over: nothing left behind


# ---------------------------------------------------------------- the grade command


def fake_grading(after: dict[str, dict[str, float]]):
    """`grade_lab` for the command: writes the scores a run on the new hidden tests gives, nothing else."""
    def grade_lab(course: Course, lab: str, *args, students=None, **options) -> GradeRun:
        fill(course, after)
        return GradeRun(lab, True, [StudentStatus(s, Status.GRADED) for s in sorted(after)])
    return grade_lab


def test_grade_records_what_the_regrade_changed_and_says_it_in_one_line(course, monkeypatch, capsys):
    fill(course, BEFORE)
    monkeypatch.setattr(grade_command, "grade_lab", fake_grading(AFTER))
    assert gradekit_main(["grade", LAB, "--course", str(course.root)]) == 0
    (written,) = sorted(course.lab_reports(LAB).glob("regrade-*.csv"))
    assert read_rows(written) == [CSV_HEADER, *map(list, MOVED)]
    lines = [line for line in capsys.readouterr().err.splitlines() if "moved" in line or "first time" in line]
    assert lines == [f"{LAB}: 4 students moved: 1 up, 3 down, largest \u22124 on test_sigmoid; 1 student graded "
                     f"for the first time (reports/{LAB}/{written.name})"]


def test_a_first_grading_prints_no_moves(course, monkeypatch, capsys):
    monkeypatch.setattr(grade_command, "grade_lab", fake_grading(BEFORE))
    assert gradekit_main(["grade", LAB, "--course", str(course.root)]) == 0
    err = capsys.readouterr().err
    assert "moved" not in err and f"{LAB}: 5 students graded for the first time (reports/{LAB}/regrade-" in err
    (written,) = course.lab_reports(LAB).glob("regrade-*.csv")
    assert len(read_rows(written)) == 1 + sum(len(cells) for cells in BEFORE.values())


# ---------------------------------------------------------------- lms grades


def lms_grades(course: Course, *options: str) -> int:
    return gradekit_main(["lms", "grades", "--course", str(course.root), *options])


def test_lms_grades_refuses_to_lower_an_exported_grade_without_accept(course, capsys):
    fill(course, BEFORE)
    assert lms_grades(course) == 0  # the first export: nothing to compare with
    assert "first export of lab9: nothing to compare with" in capsys.readouterr().out
    plain = course.lms_exports / "grades.csv"
    first_export = plain.read_bytes()
    record = json.loads((course.lms_exports / EXPORTED_RECORD).read_text())
    assert record[LAB]["grades"] == {s: float(sum(cells.values()) + 1) for s, cells in BEFORE.items()}

    fill(course, AFTER)  # the regrade: four go down, one up, one new
    assert lms_grades(course) == 1
    out, err = capsys.readouterr()
    # each student whose grade would go down, before -> after (hand grade of 1 included), and one line to act on
    assert [line for line in out.splitlines() if "\u2192" in line] == [
        f"{LAB}: late 4 \u2192 1", f"{LAB}: partial 5 \u2192 1", f"{LAB}: wrong_sign 8 \u2192 4"]
    assert err.strip().splitlines() == ["gradekit lms grades: 3 grade(s) would go down since the last export: "
                                        "nothing written; re-run with --accept to write them"]
    assert plain.read_bytes() == first_export  # nothing written, the record neither
    assert json.loads((course.lms_exports / EXPORTED_RECORD).read_text()) == record

    assert lms_grades(course, "--accept") == 0
    assert "5 grade(s) changed since the last export: 2 up, 3 down" in capsys.readouterr().out
    with plain.open(newline="", encoding="utf-8") as handle:
        exported = {row["student"]: row[f"{LAB} points"] for row in csv.DictReader(handle)}
    assert exported == {s: f"{sum(cells.values()) + 1:g}" for s, cells in AFTER.items()}
    assert lms_grades(course) == 0  # what went out is the new reference: nothing goes down any more
    assert "0 grade(s) changed since the last export: 0 up, 0 down" in capsys.readouterr().out


def test_lms_grades_lists_at_most_twenty_and_writes_when_nobody_goes_down(course, capsys):
    many = {f"s{i:02}": {"test_sigmoid": 4, "test_mean_std": 3} for i in range(25)}
    fill(course, many)
    assert lms_grades(course) == 0
    fill(course, {student: {"test_sigmoid": 0, "test_mean_std": 3} for student in many})
    capsys.readouterr()
    assert lms_grades(course, "--dry-run") == 0  # a preview writes nothing and refuses nothing, but says it
    out = capsys.readouterr().out
    assert "25 grade(s) changed since the last export: 0 up, 25 down" in out and "... and 5 more" in out
    assert lms_grades(course) == 1
    listed = capsys.readouterr().out.splitlines()
    assert len([line for line in listed if "\u2192" in line]) == 20 and listed[-1] == "... and 5 more"
    fill(course, many)
    assert lms_grades(course) == 0  # back up to where they were exported: nobody goes down
    assert "0 grade(s) changed since the last export: 0 up, 0 down" in capsys.readouterr().out


def test_an_unreadable_export_record_stops_the_export(course, capsys):
    fill(course, BEFORE)
    course.lms_exports.mkdir(parents=True)
    (course.lms_exports / EXPORTED_RECORD).write_text('{"lab9": {"grades": {"steady": "8"}}}')
    assert lms_grades(course) == 2
    assert "the grades of the last export are unknown" in capsys.readouterr().err
    assert not (course.lms_exports / "grades.csv").exists()


def test_a_blank_where_a_grade_went_out_counts_as_going_down(course, capsys):
    fill(course, BEFORE)
    assert lms_grades(course, "--missing", "blank") == 0
    with opened(course) as gradebook:  # steady's grade is gone (as a regrade interrupted would leave it)
        for grade in gradebook.find_submission(LAB, "steady").notebooks[0].grades:
            grade.auto_score = grade.manual_score = None
        gradebook.db.commit()
    capsys.readouterr()
    assert lms_grades(course, "--missing", "blank") == 1  # the LMS may clear what it has: ask first
    assert f"{LAB}: steady 8 \u2192 blank" in capsys.readouterr().out.splitlines()
