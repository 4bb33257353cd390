"""Whole-sandbox bounds, end to end: memory of all a notebook's processes together, disk in many files,
and how much one submission can make the grader hold. Each is stopped and reported for that student
only; the honest student graded in the same batch keeps full marks."""

from __future__ import annotations

import resource

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, build_tiny_course, submit_source

from gradekit.course.status import Status
from gradekit.grading.run import grade_lab
from gradekit.sandbox import limits as sandbox_limits
from gradekit.sandbox.bwrap import bwrap_path
from gradekit.sandbox.settings import Limits

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sandbox_bounds"),
              pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")]

HONEST = "def double(x):\n    return x * 2\n"
# Three processes of ~700 MB each: every one is far under the per-process address-space limit, together
# (with the kernel's own ~400 MB) they are over the sandbox's 1.8 GB.
MEMORY_TOGETHER = '''import multiprocessing, time

def _hold(megabytes):
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(30)

_children = [multiprocessing.get_context("fork").Process(target=_hold, args=(700,)) for _ in range(3)]
for _child in _children:
    _child.start()
time.sleep(20)

def double(x):
    return x * 2
'''
# 200 files of 1 MB into /submission, each far under the file-size limit; the disk holds 64 MB.
DISK_IN_MANY_FILES = '''written = 0
try:
    for _i in range(200):
        with open(f"part{_i}.bin", "wb") as _f:
            _f.write(b"x" * 2**20)
        written += 1
except OSError as error:
    print(f"disk full after {written} files: {error.strerror}")

def double(x):
    return x * 2
'''
# One cell prints ~40 MB in a single output: more than the grader reads of one message.
HUGE_OUTPUT = '''print("y" * (40 * 2**20))

def double(x):
    return x * 2
'''


def _status(run, student):
    return next(s for s in run.students if s.student == student)


@pytest.fixture(scope="module")
def bounded_class(tmp_path_factory):
    course = build_tiny_course(tmp_path_factory.mktemp("bounds") / "course")
    for student, answer in (("honest", HONEST), ("memory_together", MEMORY_TOGETHER),
                            ("disk_in_many_files", DISK_IN_MANY_FILES), ("huge_output", HUGE_OUTPUT),
                            ("zz_honest", HONEST)):
        submit_source(course, student, answer)
    grader_peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=90, memory_mb=3072, sandbox_memory_mb=1800,
                                                          disk_mb=64, file_size_mb=16))
    grader_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - grader_peak_before) / 1024
    return course, run, grader_growth_mb


def test_honest_students_keep_full_marks(bounded_class):
    _, run, _ = bounded_class
    for student in ("honest", "zz_honest"):
        status = _status(run, student)
        assert (status.status, status.score) == (Status.GRADED, 3.0), status


@pytest.mark.skipif(sandbox_limits.mechanism().startswith("no writable cgroup"),
                    reason="no writable cgroup: only per-process limits apply")
def test_processes_together_over_the_memory_limit_are_stopped(bounded_class):
    _, run, _ = bounded_class
    status = _status(run, "memory_together")
    assert status.status == Status.CRASHED and status.score == 0, status
    assert "1800 MB" in status.reason or "killed" in status.reason, status.reason


def test_many_files_stop_at_the_disk_limit(bounded_class):
    course, run, _ = bounded_class
    status = _status(run, "disk_in_many_files")
    nb = nbformat.read(course.autograded / "disk_in_many_files" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "disk full after" in printed and "No space left" in printed
    written = int(printed.split("disk full after ")[1].split()[0])
    assert written <= 64, written  # stopped at the sandbox's 64 MB, not at the 200 files
    assert status.score == 3.0  # the answer itself is right: the bound is not a penalty
    assert not list(course.root.rglob("part*.bin"))


def test_one_huge_output_is_cut_off_without_growing_the_grader(bounded_class):
    _, run, grader_growth_mb = bounded_class
    status = _status(run, "huge_output")
    assert status.status == Status.CRASHED and "more output at once than the grader keeps" in status.reason, status
    assert status.score == 0
    assert grader_growth_mb < 400, grader_growth_mb  # the grader read at most one capped message
