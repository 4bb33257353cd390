"""Grading on Dask distributed: a real LocalCluster (two worker processes, one thread each).

- The same class graded locally and on the cluster gets the same scores, cell by cell; the
  submission's extra file travels with the task (the answer reads it).
- A worker process killed (SIGKILL) while it runs a submission loses nothing: the scheduler runs that
  task again on a live worker, every student is graded exactly once, with the right score.
- What a task may carry is capped, and a task's file names cannot leave its scratch directory.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from gradekit.commands import main as gradekit_main
from gradekit.course.directory import Course
from gradekit.course.status import Status
from gradekit.grading.dask_pool import MAX_FILES, SubmissionTooLarge, pack_files, unpack_files
from gradekit.grading.run import GradeRun, grade_lab
from gradekit.sandbox.settings import Limits

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from tiny_course import LAB, NOTEBOOK, build_tiny_course, submit_source  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("distributed")]

GOOD = "def double(x):\n    return 2 * x"
WRONG = "def double(x):\n    return x + 1"
# Reads a file submitted next to the notebook: on the cluster it must have travelled with the task.
WITH_FILE = "def double(x):\n    return int(open('factor.txt').read()) * x"
SLEEPER_SECONDS = 8
SLEEPER = f"import time\ntime.sleep({SLEEPER_SECONDS})\n\ndef double(x):\n    return 2 * x"
EXPECTED = {"good": 3.0, "wrong": 0.0, "blank": 0.0, "withfile": 3.0}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, memory_limit=None) as local_cluster:
        yield local_cluster


def grade(course: Course, scheduler: str | None = None) -> GradeRun:
    return grade_lab(course, LAB, workers=2, limits=Limits(timeout=120), progress=io.StringIO(),
                     scheduler=scheduler)


def cell_scores(course: Course) -> dict[str, dict[str, float]]:
    """student -> grade id -> score, from the gradebook (what the formgrader and the report show)."""
    with Gradebook(course.db_url) as gb:
        return {s.student.id: {g.name: float(g.score) for g in s.notebooks[0].grades}
                for s in gb.assignment_submissions(LAB)}


def test_cluster_scores_equal_local_scores(tmp_path, cluster):
    course = build_tiny_course(tmp_path / "course")
    for student, source in [("good", GOOD), ("wrong", WRONG), ("blank", None), ("withfile", WITH_FILE)]:
        submit_source(course, student, source)
    (course.submitted / "withfile" / LAB / "factor.txt").write_text("2")

    local = grade(course)
    local_cells = cell_scores(course)
    assert {s.student: s.score for s in local.students} == EXPECTED

    # The same class again, through the command line, on the cluster.
    assert gradekit_main(["grade", LAB, "--course", str(course.root), "--scheduler", cluster.scheduler_address]) == 0
    status = json.loads((course.root / "reports" / LAB / "status.json").read_text())["students"]
    assert [(s["student"], s["status"], s["score"], s["max_score"], s["reason"]) for s in status] == \
        [(s.student, s.status, s.score, s.max_score, s.reason) for s in local.students]
    assert cell_scores(course) == local_cells
    assert all(s["status"] == Status.GRADED and s["seconds"] > 0 for s in status)
    with Gradebook(course.db_url) as gb:  # re-grading replaced the submissions, it did not add any
        assert sorted(s.student.id for s in gb.assignment_submissions(LAB)) == sorted(EXPECTED)


def _executing(client) -> dict[str, list[str]]:
    """worker address -> keys of the tasks it is running right now (not merely queued for it)."""
    def running(dask_worker):
        return [str(ts.key) for ts in dask_worker.state.executing]

    return client.run(running)


def test_worker_killed_mid_run_loses_nothing(tmp_path, cluster):
    from distributed import Client

    course = build_tiny_course(tmp_path / "course")
    for student, source in [("sleeper", SLEEPER), ("good", GOOD), ("wrong", WRONG)]:
        submit_source(course, student, source)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["run"] = grade(course, scheduler=cluster.scheduler_address)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = error

    with Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2)
        pids = client.run(os.getpid)
        grading = threading.Thread(target=run)
        grading.start()
        victim = None
        deadline = time.monotonic() + 90
        while victim is None and time.monotonic() < deadline and grading.is_alive():
            for address, keys in _executing(client).items():
                if any("-sleeper-" in key for key in keys):
                    victim = address
            time.sleep(0.2)
        assert victim is not None, "the sleeper's task was never seen running"
        time.sleep(3)  # its kernel is up and inside time.sleep(): the worker dies mid-notebook
        assert any("-sleeper-" in key for key in _executing(client)[victim])
        os.kill(pids[victim], signal.SIGKILL)
        grading.join(timeout=150)
        assert not grading.is_alive()
        assert "error" not in outcome, outcome.get("error")
        client.wait_for_workers(2, timeout=60)  # the nanny brings the killed worker back
        assert pids[victim] not in client.run(os.getpid).values()

    graded: GradeRun = outcome["run"]
    assert [(s.student, s.status, s.score) for s in graded.students] == \
        [("good", Status.GRADED, 3.0), ("sleeper", Status.GRADED, 3.0), ("wrong", Status.GRADED, 0.0)]
    with Gradebook(course.db_url) as gb:  # one submission each, every test cell graded once
        submissions = gb.assignment_submissions(LAB)
        assert sorted(s.student.id for s in submissions) == ["good", "sleeper", "wrong"]
        assert all(len(s.notebooks) == 1 and len(s.notebooks[0].grades) == 1 for s in submissions)


def test_files_travel_capped_and_confined(tmp_path):
    files = tmp_path / "files"
    (files / "data").mkdir(parents=True)
    (files / "data" / "x.csv").write_text("1,2\n")
    (files / f"{NOTEBOOK}.ipynb").write_text("{}")  # the notebook goes over the kernel's pipe, not as a file
    (files / "link").symlink_to("/etc/passwd")
    packed = pack_files(files)
    assert packed == {"data/x.csv": b"1,2\n"}
    unpack_files(packed, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "x.csv").read_text() == "1,2\n"

    for index in range(MAX_FILES + 1):
        (files / f"f{index}.txt").write_text("x")
    with pytest.raises(SubmissionTooLarge):
        pack_files(files)
    for name in ("../escape.txt", "/etc/evil", "a/../../b"):
        with pytest.raises(ValueError):
            unpack_files({name: b"x"}, tmp_path / "out2")
    assert not (tmp_path / "escape.txt").exists()
