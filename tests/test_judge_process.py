"""The judge in a process of its own (`gradekit.judge.process`, `gradekit.judge.serve`): one per notebook,
forked from the lab's zygote.

Whatever happens to a judge (its process killed by a segfault, stuck in a loop, out of memory) costs the
student it judged a grader error, retried once alone; the other students in the batch are graded as usual,
the run ends, and the grader's own process neither dies nor grows. The faults are made by the instructor's
trusted test cell, which the judge runs: a stand-in for whatever a student's values could do to the judge's
C libraries (the known ways are refused before they get there: tests/test_judge_hostile.py).
"""

from __future__ import annotations

import io
import resource
import time

import pytest
from hostile.tiny_course import LAB, build_tiny_course, submit_source

from gradekit.course.status import Status
from gradekit.grading.run import grade_lab
from gradekit.judge import process as judges
from gradekit.judge.judge import ChannelClosed
from gradekit.judge.process import JudgeFailed, JudgeProcess, lend, zygote_for
from gradekit.sandbox.settings import Limits
from gradekit.untrusted.bridge import Bridge

FAST = Limits(judge_seconds=3.0, judge_memory_mb=512)
PROGRAM = {
    "imports": "import os, signal, ctypes\nimport torch",
    "passes": "assert double(2) == 4, 'double: expected 4'",
    "fails": "assert double(2) == 5, 'double: expected 5 for 2'",
    "segfault": "ctypes.string_at(0)",
    "killed": "os.kill(os.getpid(), signal.SIGKILL)",
    "hangs": "while True:\n    pass",
    "python_memory": "hoard = bytearray(4 * 2**30)",
    "torch_memory": "hoard = torch.ones(2**30, dtype=torch.float64)",
    "leaves": "torch.LEFTOVER = 'from the last notebook'\nimport math\nmath.LEFTOVER = True",
    "looks": "import math\nassert not hasattr(torch, 'LEFTOVER') and not hasattr(math, 'LEFTOVER'), 'leftovers'",
    "prints": "print('{\"op\": \"verdict\", \"passed\": true}')\nassert double(2) == 5, 'double: expected 5'",
}


def kernel(source: str = "def double(x):\n    return 2 * x\n"):
    """The kernel's side of the channel, in this process: `bridge(request_text)` as the executor gives it."""
    namespace: dict = {"__name__": "__main__"}
    exec(source, namespace)
    served = Bridge(namespace)
    return lambda request: {"event": "bridge", "reply": served.serve(request)}


def gone(pid: int, within: float = 5.0) -> bool:
    """Whether process `pid` stops running within seconds (gone, or a zombie its zygote has yet to collect)."""
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def judge():
    process = JudgeProcess(zygote_for(PROGRAM, FAST))
    process.run("imports", False, kernel())
    yield process
    process.kill()


def test_verdicts_come_back_from_the_judges_process(judge):
    verdict, cpu = judge.run("passes", True, kernel())
    assert verdict.passed and cpu >= 0
    verdict, _ = judge.run("fails", True, kernel())
    assert not verdict.passed and "expected 5" in verdict.message and verdict.ename == "AssertionError"


def test_what_a_trusted_cell_prints_cannot_pose_as_a_verdict(judge):
    verdict, _ = judge.run("prints", True, kernel())
    assert not verdict.passed and "expected 5" in verdict.message


@pytest.mark.parametrize("cell, reason", [("segfault", "killed by SIGSEGV"), ("killed", "killed by SIGKILL"),
                                          ("hangs", "took longer than 3 s"),
                                          ("python_memory", "ran out of memory"),
                                          ("torch_memory", "ran out of memory")])
def test_a_judge_that_crashes_hangs_or_blows_up_fails_alone(judge, cell, reason):
    began = time.monotonic()
    with pytest.raises(JudgeFailed, match=reason):
        judge.run(cell, True, kernel())
    assert time.monotonic() - began < FAST.judge_seconds + 5
    assert judge.broken and gone(judge.pid)
    with pytest.raises(JudgeFailed):  # never used again
        judge.run("passes", True, kernel())


def test_a_kernel_gone_mid_cell_ends_the_cell_not_the_judge(judge):
    with pytest.raises(ChannelClosed) as closed:
        judge.run("passes", True, lambda request: {"event": "failed", "status": "crashed", "reason": "gone"})
    assert closed.value.reason == "gone" and not judge.broken


def test_oversized_and_garbled_replies_are_the_students_not_the_judges(judge):
    assert not judge.run("passes", True, lambda request: {"event": "bridge", "reply": "[" * 300_000})[0].passed
    assert not judge.run("passes", True, lambda request: {"event": "bridge", "reply": "not json"})[0].passed
    assert not judge.broken
    assert judge.run("passes", True, kernel())[0].passed


def test_every_notebook_gets_a_fresh_judge_from_one_zygote():
    judges.stop_zygotes()
    with lend(PROGRAM, FAST) as first:
        first.run("imports", False, kernel())
        first.run("leaves", False, kernel())
        with pytest.raises(JudgeFailed):
            first.run("killed", True, kernel())
    with lend(PROGRAM, FAST) as second:
        assert second.pid != first.pid and second.zygote is first.zygote  # torch imported once per lab
        second.run("imports", False, kernel())
        verdict, _ = second.run("looks", True, kernel())
        assert verdict.passed, verdict.message
    with lend({**PROGRAM, "other": "pass"}, FAST) as other:
        assert other.zygote is not first.zygote  # another lab's program: another zygote
    zygotes = (first.zygote, other.zygote)
    judges.stop_zygotes()
    assert all(zygote.process.poll() is not None for zygote in zygotes)


def test_a_zygote_killed_from_outside_is_replaced():
    zygote = zygote_for(PROGRAM, FAST)
    assert zygote.ready() == ""
    zygote.process.kill()
    zygote.process.wait()
    with lend(PROGRAM, FAST) as judge:
        judge.run("imports", False, kernel())
        assert judge.run("passes", True, kernel())[0].passed and judge.zygote is not zygote
    judges.stop_zygotes()


# ---------------------------------------------------------------- in a real grading run

# The hidden test hurts the judge only for the answers that ask for it: one student each.
FAULTY_TESTS = '''check_scalar("double", call("double", double, torch.tensor(2.0)), torch.tensor(4.0))
### BEGIN HIDDEN TESTS
import ctypes
answer = float(call("double", double, torch.tensor(3.0)))
if answer == 666.0:
    ctypes.string_at(0)
if answer == 777.0:
    while True:
        pass
if answer == 888.0:
    hoard = bytearray(8 * 2**30)
check_tensor("double", call("double", double, torch.arange(4.0)), 2 * torch.arange(4.0), hint="multiply by two")
### END HIDDEN TESTS'''


def answer_giving(value: float) -> str:
    return f"def double(x):\n    return torch.full_like(x, {value}) if x.numel() == 1 and x.item() == 3 else 2 * x\n"


def test_one_students_broken_judge_costs_that_student_a_retried_grader_error(tmp_path):
    course = build_tiny_course(tmp_path / "course", tests=FAULTY_TESTS)
    honest, wrong = "def double(x):\n    return 2 * x\n", "def double(x):\n    return 3 * x\n"
    for student, source in [("ada", honest), ("crash", answer_giving(666)), ("grace", honest),
                            ("hang", answer_giving(777)), ("hoard", answer_giving(888)), ("wrong", wrong)]:
        submit_source(course, student, source)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=60, judge_seconds=4, judge_memory_mb=1024),
                    progress=io.StringIO())
    grader_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    statuses = {s.student: s for s in run.students}
    for student in ("ada", "grace"):
        assert (statuses[student].status, statuses[student].score) == (Status.GRADED, 3.0), statuses[student]
    assert (statuses["wrong"].status, statuses["wrong"].score) == (Status.GRADED, 0.0)  # a verdict, not a fault
    reasons = {"crash": "killed by SIGSEGV", "hang": "took longer than 4 s", "hoard": "ran out of memory"}
    for student, reason in reasons.items():
        assert statuses[student].status == Status.GRADER_ERROR and reason in statuses[student].reason, \
            statuses[student]
    assert run.retried == sorted(reasons)  # each ran again, alone, once
    assert grader_growth_mb < 200  # the judges' memory is theirs (the hoarder asked for 8 GB)
