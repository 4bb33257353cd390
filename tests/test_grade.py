"""The grader: same scores as plain nbgrader, idempotent, manual grades kept, status report, bench smoke."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import pytest
from hostile.tiny_course import LAB, build_tiny_course, submit_source
from nbgrader.api import Gradebook

from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.exits import UsageError
from gradekit.course.status import Status
from gradekit.grading.run import check_stagers, grade_lab
from gradekit.sandbox.runtime import course_runtime
from gradekit.sandbox.settings import Limits

pytestmark = pytest.mark.slow

CLASS = {
    "full": "def double(x):\n    return 2 * x\n",
    "wrong": "def double(x):\n    return x ** 2\n",  # passes the visible check (2 -> 4), fails hidden ones
    "blank": None,
}


def _scores(course: Course) -> dict:
    with Gradebook(course.db_url) as gb:
        return {s.student.id: (s.score, s.max_score) for s in gb.assignment_submissions(LAB)}


def _cell_scores(course: Course) -> dict:
    with Gradebook(course.db_url) as gb:
        return {(nb.student.id, grade.name): (grade.auto_score, grade.manual_score)
                for nb in gb.find_notebook("tiny_double", LAB).submissions for grade in nb.grades}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class graded by plain nbgrader (a copy) and by gradekit, then graded again."""
    root = tmp_path_factory.mktemp("grade")
    course = build_tiny_course(root / "ours")
    for student, answer in CLASS.items():
        submit_source(course, student, answer)
    plain = Course(shutil.copytree(course.root, root / "plain"))
    plain.nbgrader("autograde", LAB, "--force")
    first = subprocess.run([sys.executable, "-m", "gradekit", "grade", LAB, "--course", str(course.root),
                            "--workers", "2", "--timeout", "60"], capture_output=True, text=True)
    return course, plain, first


def test_scores_equal_plain_nbgrader(graded):
    course, plain, first = graded
    assert _scores(course) == _scores(plain)
    assert _cell_scores(course) == _cell_scores(plain)
    assert _scores(course)["full"] == (3.0, 3.0) and _scores(course)["wrong"] == (0.0, 3.0)


def test_status_lines_exit_code_and_status_json(graded):
    course, _, first = graded
    assert first.returncode == 0, first.stderr
    assert "executing: 100%" in first.stderr and "3/3" in first.stderr  # the bar ends at the class size
    lines = {line.split()[0]: line for line in first.stdout.splitlines()}
    assert "graded" in lines["full"] and "3/3" in lines["full"]
    status = json.loads((course.root / "reports" / LAB / "status.json").read_text())
    assert status["lab"] == LAB and status["sandboxed"] is True
    by_student = {s["student"]: s for s in status["students"]}
    assert {s: by_student[s]["status"] for s in CLASS} == {s: Status.GRADED for s in CLASS}
    assert by_student["blank"]["score"] == 0 and by_student["full"]["max_score"] == 3
    assert set(by_student["full"]) == {"student", "status", "reason", "repairs", "flags", "score",
                                      "max_score", "seconds", "judge_seconds", "judge_cpu", "input_digest",
                                      "tests_digest", "late_penalty", "runtime"}
    assert by_student["full"]["runtime"] == course_runtime(REPO_ROOT).label  # Colab's, the kit's default
    assert len(by_student["full"]["input_digest"]) == len(by_student["full"]["tests_digest"]) == 64
    assert 0 < by_student["full"]["judge_seconds"] < by_student["full"]["seconds"]
    assert set(status["phases"]) == {"staging", "execution", "judge", "scoring"}
    assert len(status["phases"]["scoring"]) == len(CLASS)


def test_rerun_is_idempotent_and_keeps_manual_grades(graded):
    course, _, _ = graded
    with Gradebook(course.db_url) as gb:
        grade = gb.find_grade("test_double", "tiny_double", LAB, "wrong")
        grade.manual_score = 1.5
        gb.db.commit()
    before = _cell_scores(course)
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=60), progress=io.StringIO())
    assert [s.status for s in run.students] == [Status.GRADED] * 3
    assert _cell_scores(course) == before
    assert _scores(course)["wrong"] == (1.5, 3.0)


def test_invalid_and_missing_students_are_reported(tmp_path):
    course = build_tiny_course(tmp_path / "course")
    submit_source(course, "ok", CLASS["full"])
    broken = course.submitted / "broken" / LAB / "tiny_double.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    with Gradebook(course.db_url) as gb:
        gb.add_student("absent")
    run = grade_lab(course, LAB, workers=1, limits=Limits(timeout=60), sandboxed=False,
                    progress=io.StringIO())
    statuses = {s.student: s for s in run.students}
    assert not run.sandboxed and not run.all_graded
    assert statuses["ok"].status == Status.GRADED and statuses["ok"].score == 3.0
    assert statuses["broken"].status == Status.INVALID and statuses["broken"].reason
    assert statuses["absent"].status == Status.MISSING
    assert broken.read_text() == "{not json"


def test_bench_smoke(tmp_path):
    source = build_tiny_course(tmp_path / "source")
    result = subprocess.run([sys.executable, "-m", "gradekit", "bench", "--students", "2", "--repeats", "1",
                             "--source", str(source.root), "--out", str(tmp_path / "bench"),
                             "--skip-no-sandbox", "--small-class", "0"], capture_output=True, text=True)
    # (The small class, --small-class, is the same comparison on another class: `make bench` runs it.)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scores identical in every run" in result.stdout
    assert "speed-up gradekit vs nbgrader" in result.stdout and "one-student regrade (" in result.stdout
    assert "gradekit served warm by `gradekit serve`" in result.stdout  # the regrade through a warm service too
    assert f"kernel runtime, both graders: {course_runtime(REPO_ROOT).label}" in result.stdout


def test_without_bubblewrap_grading_works_and_says_it_is_not_sandboxed(tmp_path, monkeypatch, capsys):
    """A machine without bwrap: limits only, a loud warning, and status.json says sandboxed: false."""
    import argparse

    from gradekit.commands import grade
    from gradekit.sandbox import bwrap as sandbox

    course = build_tiny_course(tmp_path / "course")
    submit_source(course, "full", CLASS["full"])
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    monkeypatch.setattr(grade, "bwrap_path", lambda: None)
    args = argparse.Namespace(lab=LAB, course=course.root, workers=1, timeout=60.0, memory=4096,
                              no_sandbox=False, no_warm=True, student=None, outdated=False, scheduler=None,
                              scorers=None, stagers=None)
    assert grade.main(args) == 0
    err = capsys.readouterr().err
    assert "WITHOUT a sandbox (bubblewrap missing)" in err and "NOT SANDBOXED" in err
    status = json.loads((course.root / "reports" / LAB / "status.json").read_text())
    assert status["sandboxed"] is False
    assert [(s["student"], s["status"], s["score"]) for s in status["students"]] == [("full", Status.GRADED, 3.0)]


def test_several_stagers_share_the_class_and_score_like_plain_nbgrader(graded, tmp_path, monkeypatch):
    """`--stagers 2`: both processes stage (staging only reads the private gradebook copy), and every
    student gets plain nbgrader's score."""
    from gradekit.grading.nbgrader_worker import StepsWorker

    _, plain, _ = graded
    course = build_tiny_course(tmp_path / "course")
    for student, answer in CLASS.items():
        submit_source(course, student, answer)
    staged_by: dict[str, str] = {}
    run_task = StepsWorker.run

    def recording_run(self, task: dict) -> dict:
        answer = run_task(self, task)
        if task["op"] == "stage":
            staged_by[task["student"]] = self.role
        return answer

    monkeypatch.setattr(StepsWorker, "run", recording_run)
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=60), progress=io.StringIO(), stagers=2)
    assert all(s.status == Status.GRADED for s in run.students), run.students
    assert sorted(staged_by) == sorted(CLASS) and len(set(staged_by.values())) == 2, staged_by
    assert _scores(course) == _scores(plain) and _cell_scores(course) == _cell_scores(plain)


def test_stagers_must_be_at_least_one():
    assert check_stagers(None) >= 1 and check_stagers(3) == 3
    with pytest.raises(UsageError, match="at least one process must stage"):
        check_stagers(0)
