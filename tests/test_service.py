"""`gradekit serve`: the course's grader kept warm between commands (`gradekit.grading.service`, `.kept`).

Every test drives the real commands in their own processes (`python -m gradekit ...`): the command hands itself to
the service over its socket, the service grades in real sandboxes forked from a zygote it keeps, and the gradebook
is the real one. What must hold: the grades are those a run of its own gives; each student is as isolated as ever
(nothing one leaves is seen by the next, in another command); a run reads the hidden tests afresh; Ctrl-C, a busy
service, an idle timeout, `--stop` and a killed service leave nothing half done and no process behind.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hostile.tiny_course import LAB, TESTS, build_tiny_course, submit_source

from gradekit.course.exits import UsageError
from gradekit.grading.service import private_socket_dir
from gradekit.grading.service_client import ask, socket_dir, socket_path
from gradekit.sandbox.limits import pid_alive

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("service")]
HONEST = "def double(x):\n    return 2 * x\n"
WRONG = "def double(x):\n    return x + 1\n"
SERVED = "runs this command, warm"
# Leaves a mark wherever a notebook could reach something the next one sees (its /tmp, a module both import, the
# environment, its working folder), and answers wrongly if it finds one already there.
MARKER = '''import os
import pathlib

import torch

_seen = [where for where, found in [
    ("/tmp", pathlib.Path("/tmp/gradekit-mark").exists()),
    ("torch", hasattr(torch, "_gradekit_mark")),
    ("environment", "GRADEKIT_MARK" in os.environ),
    ("working folder", pathlib.Path("gradekit-mark").exists()),
] if found]
pathlib.Path("/tmp/gradekit-mark").write_text("seen")
pathlib.Path("gradekit-mark").write_text("seen")
torch._gradekit_mark = True
os.environ["GRADEKIT_MARK"] = "1"


def double(x):
    return x if _seen else 2 * x
'''
SLEEPER = "import time\n\ntime.sleep(120)\n\n\ndef double(x):\n    return 2 * x\n"


def gradekit(course, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradekit", *args, "--course", str(course.root)],
                          capture_output=True, text=True, timeout=timeout)


def score(course, student: str) -> float | None:
    with course.open_gradebook() as gb:
        for submission in gb.assignment_submissions(LAB):
            if submission.student.id == student:
                return submission.score
    return None


def start_service(course, *labs: str, idle_minutes: float = 30.0) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "gradekit", "serve", *labs, "--course", str(course.root),
                                "--idle-minutes", str(idle_minutes)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        answer = ask(course.root, {"op": "status"}, timeout=2.0)
        if answer and answer.get("ready") and answer.get("pid") == process.pid:
            return process
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    raise AssertionError("the service did not warm up")


def stop_service(course, process: subprocess.Popen) -> str:
    stopped = gradekit(course, "serve", "--stop")
    assert stopped.returncode == 0, stopped.stderr
    process.wait(timeout=60)
    return process.stdout.read()


def staging_folders(pid: int) -> list[Path]:
    """The staging folders the process `pid` owns."""
    return [p for p in Path(tempfile.gettempdir()).glob(f"gradekit-{LAB}-*")
            if (p / "owner.pid").is_file() and (p / "owner.pid").read_text() == str(pid)]


def status_entries(course) -> dict:
    entries = json.loads((course.root / "reports" / LAB / "status.json").read_text())["students"]
    return {entry["student"]: entry for entry in entries}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = build_tiny_course(tmp_path_factory.mktemp("served") / "course")
    for student, answer in (("ada", HONEST), ("bob", WRONG), ("mark1", MARKER), ("mark2", MARKER)):
        submit_source(course, student, answer)
    first = gradekit(course, "grade", LAB, "--student", "ada", "bob")  # no service: graded in its own process
    assert first.returncode == 0 and SERVED not in first.stderr, first.stderr
    return course


def test_a_served_regrade_is_warm_and_writes_what_a_run_of_its_own_writes(course):
    expected = {student: (entry["status"], entry["score"], entry["max_score"], entry["input_digest"],
                          entry["tests_digest"]) for student, entry in status_entries(course).items()}
    service = start_service(course, LAB)
    try:
        before = ask(course.root, {"op": "status"})["labs"][LAB]
        assert before["runs"] == 0 and pid_alive(before["zygote"]) and all(map(pid_alive, before["nbgrader_workers"]))
        for student in ("ada", "bob"):
            served = gradekit(course, "grade", LAB, "--student", student)
            assert served.returncode == 0 and SERVED in served.stderr, served.stderr
            assert f"{student} " in served.stdout  # the status line, on the command's own stdout
            entry = status_entries(course)[student]
            assert (entry["status"], entry["score"], entry["max_score"], entry["input_digest"],
                    entry["tests_digest"]) == expected[student]
        assert (score(course, "ada"), score(course, "bob")) == (3.0, 0.0)
        # The kept staging folder holds the last run's files only: ada's copy went before bob's run.
        staging, = staging_folders(service.pid)
        assert [p.name for p in (staging / "submitted").iterdir()] == ["bob"]
        assert len(list((staging / "runs").iterdir())) <= 4  # the last run's sandbox folders and logs
        after = ask(course.root, {"op": "status"})["labs"][LAB]
        # The same processes served both commands: nothing was imported again.
        assert after["runs"] == 2 and (after["zygote"], after["nbgrader_workers"]) == \
            (before["zygote"], before["nbgrader_workers"])
        shown = gradekit(course, "serve", "--status")
        assert shown.returncode == 0 and f"{LAB}: warm, 2 run(s)" in shown.stdout
        # Other limits: the run opens its own zygote (never one made for other limits), and that one is kept.
        for _ in range(2):
            other = gradekit(course, "grade", LAB, "--student", "ada", "--timeout", "120")
            assert other.returncode == 0 and SERVED in other.stderr and score(course, "ada") == 3.0
        changed = ask(course.root, {"op": "status"})["labs"][LAB]
        assert changed["runs"] == 2 and changed["zygote"] != after["zygote"] and not pid_alive(after["zygote"])
        after = changed
    finally:
        log = stop_service(course, service)
    assert "stopped (asked to stop)" in log
    assert not pid_alive(after["zygote"]) and not any(map(pid_alive, after["nbgrader_workers"]))
    assert not socket_path(course.root).exists()
    assert not staging.exists() and not staging_folders(service.pid)


def test_nothing_a_student_leaves_is_seen_by_the_next_in_a_warm_service(course):
    service = start_service(course, LAB)
    try:
        for student in ("mark1", "mark2", "mark1"):  # each a command of its own, the same zygote
            served = gradekit(course, "grade", LAB, "--student", student)
            assert served.returncode == 0 and SERVED in served.stderr, served.stderr
            assert score(course, student) == 3.0, f"{student} saw what an earlier notebook left"
    finally:
        stop_service(course, service)
    assert not Path("/tmp/gradekit-mark").exists()  # the sandbox's /tmp was its own


def test_a_served_run_reads_changed_hidden_tests(course, tmp_path):
    service = start_service(course, LAB)
    try:
        before = gradekit(course, "grade", LAB, "--student", "ada")
        assert score(course, "ada") == 3.0 and SERVED in before.stderr
        judge_before_digest = status_entries(course)["ada"]["tests_digest"]
        # The instructor fixes the hidden test (now: three times x) and releases again; the service keeps running.
        build_tiny_course(course.root, tests=TESTS.replace("2 * x, hint", "3 * x, hint"))
        served = gradekit(course, "grade", LAB, "--student", "ada")
        assert SERVED in served.stderr, served.stderr
        served_score = score(course, "ada")
        assert served_score < 3.0  # graded on the new hidden test, not on the one the service started with
        local = gradekit(course, "grade", LAB, "--student", "ada", "--no-serve")
        assert SERVED not in local.stderr and score(course, "ada") == served_score
        assert status_entries(course)["ada"]["tests_digest"] != judge_before_digest
    finally:
        stop_service(course, service)
        build_tiny_course(course.root)  # as the other tests expect it
        gradekit(course, "grade", LAB, "--student", "ada", "--no-serve")


def test_ctrl_c_stops_the_served_run_and_a_busy_service_leaves_the_command_to_the_lock(course):
    submit_source(course, "sleeper", SLEEPER)
    service = start_service(course, LAB)
    try:
        running = subprocess.Popen([sys.executable, "-m", "gradekit", "grade", LAB, "--student", "sleeper",
                                    "--course", str(course.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.monotonic() + 60
        while not (ask(course.root, {"op": "status"}) or {}).get("running") and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # the notebook is asleep in its sandbox
        second = gradekit(course, "grade", LAB, "--student", "ada")  # the service is busy: runs here, finds the lock
        assert second.returncode == 2 and SERVED not in second.stderr
        assert f"pid {service.pid}" in second.stderr and "another grading run" in second.stderr
        running.send_signal(signal.SIGINT)  # Ctrl-C in the command's terminal
        _, err = running.communicate(timeout=60)
        assert running.returncode == 130 and "interrupted; what was written is whole" in err
        assert score(course, "sleeper") is None  # nothing written for the notebook that was stopped
        assert service.poll() is None  # the service serves on
        served = gradekit(course, "grade", LAB, "--student", "ada")
        assert served.returncode == 0 and SERVED in served.stderr and score(course, "ada") == 3.0
    finally:
        stop_service(course, service)
        (course.submitted / "sleeper").rename(course.root / "sleeper-done")


def test_idle_timeout_a_killed_service_and_its_socket(course):
    service = start_service(course, LAB, idle_minutes=0.05)
    kept = ask(course.root, {"op": "status"})["labs"][LAB]
    assert service.wait(timeout=60) == 0 and "no command for 0.05 min" in service.stdout.read()
    assert not socket_path(course.root).exists() and not pid_alive(kept["zygote"])
    # A service killed outright leaves its socket; a command then runs in its own process, and serve starts again.
    service = start_service(course, LAB)
    kept = ask(course.root, {"op": "status"})["labs"][LAB]
    service.kill()
    service.wait()
    assert socket_path(course.root).exists()
    for pid in (kept["zygote"], *kept["nbgrader_workers"]):  # its processes follow it (socket or pipe closed)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(pid)
    local = gradekit(course, "grade", LAB, "--student", "bob")
    assert local.returncode == 0 and SERVED not in local.stderr and score(course, "bob") == 0.0
    assert gradekit(course, "serve", "--status").returncode == 1
    detached = gradekit(course, "serve", LAB, "--detach")
    assert detached.returncode == 0 and "keeps" in detached.stdout, detached.stderr
    pid = ask(course.root, {"op": "status"})["pid"]
    assert gradekit(course, "serve", "--stop").returncode == 0 and not pid_alive(pid)
    assert "nothing to stop" in gradekit(course, "serve", "--stop").stdout


def test_only_this_user_can_reach_a_service(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own socket folder
    shared = socket_dir()
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)  # whatever the umask: a folder others may enter
    with pytest.raises(UsageError, match="0700"):
        private_socket_dir()
    shared.rmdir()
    assert stat.S_IMODE(private_socket_dir().stat().st_mode) == 0o700
