"""Fair timeouts: a notebook that times out while other notebooks share the machine runs again alone, and that
run decides (`gradekit.grading.run.grade_lab`).

The execution pool is replaced by one whose notebooks take as long as the test says: "slow when shared" times
out only in a pool of several workers, "always slow" times out alone too. Staging, scoring by nbgrader and the
gradebook are the real ones; that a retried notebook really runs alone, once, is tested with real sandboxes in
tests/test_judge_process.py.
"""

from __future__ import annotations

import io

import pytest
from hostile.tiny_course import LAB, build_tiny_course, submit_source

from gradekit.course.status import Status
from gradekit.grading import run as run_module
from gradekit.grading.run import DECIDED_ALONE, grade_lab
from gradekit.sandbox.executors import ExecutionResult, mark_not_run
from gradekit.sandbox.settings import Limits

pytestmark = pytest.mark.slow
HONEST = "def double(x):\n    return 2 * x\n"


class TimedPool:
    """An execution pool whose notebooks end as `outcome(student, workers)` says, without running them."""

    runs: list[tuple[str, int]] = []

    def __init__(self, workers: int, on_done, outcome) -> None:
        self.workers, self.on_done, self.outcome = workers, on_done, outcome

    def submit(self, student, files, nb) -> None:
        TimedPool.runs.append((student, self.workers))
        if self.outcome(student, self.workers) == "timed out":
            mark_not_run(nb, "timeout: still running after 30 s")
            self.on_done(student, ExecutionResult(Status.TIMED_OUT, "timeout: still running after 30 s", nb, 30.0))
        else:
            self.on_done(student, ExecutionResult("done", "", nb, 1.0))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def grade_with(monkeypatch, tmp_path, outcome, workers=2):
    course = build_tiny_course(tmp_path / "course")
    for student in ("ada", "always_slow", "grace", "slow_when_shared"):
        submit_source(course, student, HONEST)
    TimedPool.runs = []
    monkeypatch.setattr(run_module, "execution_pool",
                        lambda sandbox, workers, warm, on_done, **_: TimedPool(workers, on_done, outcome))
    run = grade_lab(course, LAB, workers=workers, limits=Limits(timeout=30), progress=io.StringIO())
    return {s.student: s for s in run.students}, run


def slow(student: str, workers: int) -> str:
    return "timed out" if student == "always_slow" or (student == "slow_when_shared" and workers > 1) else "done"


def test_a_timeout_beside_other_notebooks_is_decided_by_a_run_alone(monkeypatch, tmp_path):
    statuses, run = grade_with(monkeypatch, tmp_path, slow)
    shared = statuses["slow_when_shared"]
    assert (shared.status, shared.score) == (Status.GRADED, 3.0) and DECIDED_ALONE in shared.reason
    always = statuses["always_slow"]
    assert always.status == Status.TIMED_OUT and DECIDED_ALONE in always.reason and "timeout" in always.reason
    for student in ("ada", "grace"):
        assert (statuses[student].status, statuses[student].score, statuses[student].reason) == \
            (Status.GRADED, 3.0, "")
    assert run.retried == ["always_slow", "slow_when_shared"]
    assert sorted(r for r in TimedPool.runs if r[1] == 1) == [("always_slow", 1), ("slow_when_shared", 1)]


def test_a_timeout_in_a_run_of_one_worker_counts_at_once(monkeypatch, tmp_path):
    statuses, run = grade_with(monkeypatch, tmp_path, slow, workers=1)
    assert statuses["always_slow"].status == Status.TIMED_OUT and DECIDED_ALONE not in statuses["always_slow"].reason
    assert run.retried == [] and len(TimedPool.runs) == 4  # nothing ran twice: it was alone already
