"""Faults injected into real runs: the machine, the database or a person fails, and afterwards no grade is
stale or wrong without being marked, nothing is lost, and the message is one line that says what to do.

Each test states the fault, how it is made (a real SIGKILL/SIGHUP, a full tmpfs, a held SQLite lock, a
database server that is not there) and what must hold after it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, build_tiny_course, submission, submit_source
from nbgrader.api import Gradebook

from gradekit.course.backup import backups
from gradekit.course.directory import Course
from gradekit.course.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, environment_problem
from gradekit.course.ledger import outdated
from gradekit.grading.run import OWNER_FILE, STAGING_PREFIX, sweep_leftovers
from gradekit.sandbox.bwrap import bwrap_path

RIGHT = "def double(x):\n    return 2 * x\n"
SLOW = "import time\ntime.sleep(30)\n\ndef double(x):\n    return 2 * x\n"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def gradekit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradekit", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def scores(course: Course) -> dict[str, float]:
    with Gradebook(course.db_url) as gradebook:
        return {s.student.id: float(s.score) for s in gradebook.assignment_submissions(LAB)
                if any(g.auto_score is not None for nb in s.notebooks for g in nb.grades)}


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr and "[SQL" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture
def course(tmp_path) -> Course:
    return build_tiny_course(tmp_path / "course")


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------- the gradebook


def test_a_zero_byte_gradebook_is_never_recreated_and_restore_brings_the_grades_back(course, tmp_path):
    submit_source(course, "ann", RIGHT)
    assert gradekit("grade", LAB, "--course", str(course.root), "--no-sandbox").returncode == EXIT_OK
    before = scores(course)
    assert before == {"ann": 3.0}
    kept = backups(course)
    assert [b.name.split("-", 1)[1] for b in kept] == [f"grade-{LAB}"]  # before the run: its gradebook

    course.gradebook.write_bytes(b"")  # a full disk or a bad copy truncated it
    done = gradekit("report", "--course", str(course.root))
    assert done.returncode == EXIT_FAILED and "empty (0 bytes)" in one_line(done) and "gradekit restore" in done.stderr
    assert course.gradebook.stat().st_size == 0  # never silently recreated empty

    # The backup was taken before the grade: restore it, grade again, and the grades are back.
    done = gradekit("restore", "--course", str(course.root))
    assert done.returncode == EXIT_OK, done.stderr
    assert scores(course) == {}  # the gradebook as it was before that grading run
    assert outdated(course, LAB) == {}
    assert gradekit("grade", LAB, "--course", str(course.root), "--no-sandbox", "--outdated").returncode == EXIT_OK
    assert scores(course) == before


def test_a_locked_gradebook_is_one_line_exit_2(course):
    holder = sqlite3.connect(course.gradebook, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        done = gradekit("report", "--course", str(course.root), timeout=120)
    finally:
        holder.rollback()
        holder.close()
    assert done.returncode == EXIT_USAGE and "locked by another program" in one_line(done)


def test_a_database_server_that_is_down_is_one_line_exit_3(course):
    with (course.root / "nbgrader_config.py").open("a") as config:
        config.write('\nc.CourseDirectory.db_url = "postgresql+psycopg2://grader:secret@127.0.0.1:9/gradebook"\n')
    done = gradekit("report", "--course", str(course.root), timeout=120)
    line = one_line(done)
    assert done.returncode == EXIT_FAILED and "cannot be reached" in line and "secret" not in line


def test_environment_problems_never_quote_the_database():
    from sqlalchemy.exc import OperationalError

    error = OperationalError("SELECT student.id FROM student WHERE ...", {}, Exception("database is locked"))
    code, line = environment_problem(error)
    assert code == EXIT_USAGE and "SELECT" not in line
    full = OSError(28, "No space left on device", "/tmp/x/lab1.ipynb")
    code, line = environment_problem(full)
    assert code == EXIT_FAILED and line.startswith("disk full writing /tmp/x/lab1.ipynb (") and "MB free" in line
    assert environment_problem(ValueError("a bug of ours")) is None


# ---------------------------------------------------------------- the disk


libc = ctypes.CDLL(None, use_errno=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_collect_on_a_full_disk_loses_nothing_and_says_where(course, tmp_path):
    submit_source(course, "101", RIGHT)
    first = (course.submitted / "101" / LAB / f"{NOTEBOOK}.ipynb").read_bytes()
    small = course.submitted / "102"
    small.mkdir()
    assert libc.mount(b"full", os.fsencode(small), b"tmpfs", 0, b"size=16k") == 0, os.strerror(ctypes.get_errno())
    try:
        download = tmp_path / "canvas.zip"
        big = nbformat.writes(submission(course, RIGHT + "#" * 40_000 + "\n"))  # more than the 16 KB left
        with zipfile.ZipFile(download, "w") as archive:
            archive.writestr(f"smithjane_101_1001_{NOTEBOOK}.ipynb", big)
            archive.writestr(f"leeann_102_1002_{NOTEBOOK}.ipynb", big)
        done = gradekit("collect", LAB, str(download), "--course", str(course.root))
        assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
        line = one_line(done)
        assert "disk full writing" in line and str(small) in line
        assert not any(p.name.endswith(".ipynb") for p in small.rglob("*"))  # no truncated notebook
        # 101 was placed before the disk filled: their file and the record of it are whole.
        placed = (course.submitted / "101" / LAB / f"{NOTEBOOK}.ipynb").read_bytes()
        assert placed != first and nbformat.reads(placed.decode(), as_version=4)
        assert "101" in (course.collected_file(LAB)).read_text()
    finally:
        libc.umount2(os.fsencode(small), 2)


# ---------------------------------------------------------------- kills and hang-ups


def test_leftovers_of_a_run_killed_outright_are_swept_and_a_live_runs_are_not(tmp_path):
    dead = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}tiny-"))
    (dead / OWNER_FILE).write_text(str(dead_pid()))
    (dead / "submitted").mkdir()
    (dead / "submitted" / "hidden.ipynb").write_text("the hidden tests")
    live = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}tiny-"))
    (live / OWNER_FILE).write_text(str(os.getpid()))
    try:
        removed = sweep_leftovers()
        assert dead.name in removed and not dead.exists()
        assert live.is_dir()
    finally:
        import shutil

        shutil.rmtree(live, ignore_errors=True)
        shutil.rmtree(dead, ignore_errors=True)


def start_grade(course: Course) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gradekit", "grade", LAB, "--course", str(course.root),
                             "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)


def staging_of(process: subprocess.Popen) -> list[Path]:
    return [p for p in Path(tempfile.gettempdir()).glob(f"{STAGING_PREFIX}{LAB}-*")
            if (p / OWNER_FILE).is_file() and (p / OWNER_FILE).read_text().strip() == str(process.pid)]


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
def test_a_grading_run_killed_outright_leaves_nothing_after_the_next_run_and_the_same_grades(course):
    for student in ("ann", "bob"):
        submit_source(course, student, RIGHT)
    submit_source(course, "cy", SLOW)  # sorted last: the run is killed while it sleeps
    run = start_grade(course)
    wait_for(lambda: "ann" in scores(course) and "bob" in scores(course) and staging_of(run))
    left = staging_of(run)
    os.killpg(run.pid, signal.SIGKILL)  # the grader and everything it started, at once
    run.wait()
    assert left and left[0].exists()  # SIGKILL cannot be handled: the next run sweeps it
    assert "cy" not in scores(course)
    submit_source(course, "cy", RIGHT)
    done = gradekit("grade", LAB, "--course", str(course.root), "--outdated")
    assert done.returncode == EXIT_OK, done.stderr
    assert not left[0].exists()
    assert scores(course) == {"ann": 3.0, "bob": 3.0, "cy": 3.0}
    assert outdated(course, LAB) == {}


@pytest.mark.slow
@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
def test_a_hang_up_stops_a_run_like_ctrl_c_and_leaves_no_staging(course):
    submit_source(course, "ann", SLOW)
    run = start_grade(course)
    wait_for(lambda: bool(staging_of(run)))
    left = staging_of(run)
    time.sleep(2)
    os.kill(run.pid, signal.SIGHUP)  # the SSH session closed
    _, err = run.communicate(timeout=120)
    assert run.returncode == EXIT_INTERRUPTED, err
    assert "interrupted" in err and not left[0].exists()


# ---------------------------------------------------------------- deaths the student did not cause


def processes(match) -> list[int]:
    """pids whose (uid, command line) satisfy `match`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid = int(next(line for line in (entry / "status").read_text().splitlines()
                           if line.startswith("Uid:")).split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration, ValueError):
            continue
        if match(uid, command):
            found.append(int(entry.name))
    return found


def descendants(root: int) -> set[int]:
    """Every process below `root` (this test's own grading run only: other tests run beside it)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def students_kernels(run: subprocess.Popen) -> list[int]:
    mine = descendants(run.pid)
    return [pid for pid in processes(lambda uid, command: uid >= 60000 and "zygote.py" in command) if pid in mine]


def zygotes(run: subprocess.Popen) -> list[int]:
    mine = descendants(run.pid)
    return [pid for pid in processes(lambda uid, command: uid == 0 and "zygote.py" in command
                                     and "bwrap" not in command) if pid in mine]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


NAP = "import time\ntime.sleep(6)\n\ndef double(x):\n    return 2 * x\n"
SELF_KILL = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n\ndef double(x):\n    return 2 * x\n"
forking = pytest.mark.skipif(bwrap_path() is None or os.geteuid() != 0, reason="the zygote needs bubblewrap and root")


def grade_statuses(course: Course) -> dict[str, tuple[str, float | None]]:
    import json

    data = json.loads(course.status_file(LAB).read_text())
    return {s["student"]: (s["status"], s["score"]) for s in data["students"]}


@pytest.mark.slow
@forking
@pytest.mark.parametrize("what", ["the student's kernel", "the zygote"])
def test_a_kill_from_outside_is_the_graders_fault_the_notebook_runs_again_and_gets_its_marks(course, what):
    for student in ("ann", "bob"):
        submit_source(course, student, NAP)
    run = start_grade(course)
    wait_for(lambda: len(students_kernels(run)) >= 1)
    time.sleep(2)  # the notebook is running (asleep in its first cell)
    targets = students_kernels(run) if what == "the student's kernel" else zygotes(run)
    assert targets, what
    kill_all(targets)
    out, err = run.communicate(timeout=300)
    assert run.returncode == EXIT_OK, err
    assert grade_statuses(course) == {"ann": ("graded", 3.0), "bob": ("graded", 3.0)}


@pytest.mark.slow
@forking
def test_a_notebook_that_kills_itself_is_its_own_crash_after_one_run_alone(course):
    submit_source(course, "ann", RIGHT)
    submit_source(course, "eve", SELF_KILL)
    done = gradekit("grade", LAB, "--course", str(course.root))
    assert done.returncode == 1, done.stderr  # attention: a crash, the student's
    statuses = grade_statuses(course)
    assert statuses["ann"] == ("graded", 3.0)
    assert statuses["eve"][0] == "crashed" and statuses["eve"][1] == 0.0


# ---------------------------------------------------------------- interrupts


@pytest.mark.slow
def test_ctrl_c_during_collect_leaves_every_notebook_and_its_record_whole(course, tmp_path):
    download = tmp_path / "canvas.zip"
    padding = "#" * 200_000 + "\n"  # ~200 KB notebooks: placing 150 of them takes a moment
    with zipfile.ZipFile(download, "w") as archive:
        for user in range(1000, 1150):
            archive.writestr(f"student{user}_{user}_{user + 5000}_{NOTEBOOK}.ipynb",
                             nbformat.writes(submission(course, RIGHT + padding)))
    run = subprocess.Popen([sys.executable, "-m", "gradekit", "collect", LAB, str(download), "--course",
                            str(course.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    wait_for(lambda: any(course.submitted.glob(f"*/{LAB}/{NOTEBOOK}.ipynb")), timeout=120)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=120)
    assert run.returncode == EXIT_INTERRUPTED, err
    assert "interrupted; what was written is whole" in err
    placed = {p.parent.parent.name: p for p in course.submitted.glob(f"*/{LAB}/{NOTEBOOK}.ipynb")}
    for path in placed.values():  # never a truncated notebook
        nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    import json

    records = json.loads(course.collected_file(LAB).read_text(encoding="utf-8"))
    assert set(records) == set(placed)  # lms.json says exactly what submitted/ holds
    assert not list(course.root.rglob("*.partial"))


@pytest.mark.slow
@pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")
def test_a_dask_scheduler_that_is_not_there_is_one_line_and_no_grade(course):
    submit_source(course, "ann", RIGHT)
    done = gradekit("grade", LAB, "--course", str(course.root), "--scheduler", "tcp://127.0.0.1:9", timeout=180)
    line = one_line_after_bars(done)
    assert done.returncode == EXIT_FAILED and "Dask scheduler tcp://127.0.0.1:9 cannot be reached" in line
    assert scores(course) == {}


def one_line_after_bars(done: subprocess.CompletedProcess) -> str:
    """The command's last line (the progress bars of a grading run come before it)."""
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]
