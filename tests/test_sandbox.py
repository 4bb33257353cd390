"""Hostile submissions: each must fail to do harm, be reported for its student, and not stop the batch."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

import nbformat
import pytest
from hostile.tiny_course import LAB, NOTEBOOK, SECRET_MARKER, build_tiny_course, hostile_source, submit_source

from gradekit.course.status import Status
from gradekit.grading.run import grade_lab
from gradekit.sandbox import bwrap as sandbox
from gradekit.sandbox.bwrap import bwrap_path
from gradekit.sandbox.settings import Limits

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bwrap_path() is None, reason="bubblewrap not installed")]

HONEST = "def double(x):\n    return x * 2\n"
HOSTILE = ["read_secrets", "write_course", "network", "fork_bomb", "memory_hog", "infinite_loop",
           "kill_parent", "huge_file", "exit_kernel", "segfault"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Listener:
    """A TCP server on the host's loopback that records whether anyone connected."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                self.server.accept()[0].close()
                self.connections += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.server.close()


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    course = build_tiny_course(tmp_path_factory.mktemp("hostile") / "course")
    listener = Listener()
    submit_source(course, "honest", HONEST)
    submit_source(course, "zz_honest", HONEST)  # graded after the hostile ones
    for name in HOSTILE:
        submit_source(course, name, hostile_source(name, course=str(course.root), port=str(listener.port)))
    protected = [*course.root.glob("source/**/*.ipynb"), *course.release.rglob("*.ipynb"),
                 *course.submitted.rglob("*.ipynb")]
    before = {path: _digest(path) for path in protected}
    claimed: list[int] = []
    claim = sandbox._claim_uid

    def recording_claim():
        uid, fd = claim()
        claimed.append(uid)
        return uid, fd

    leftovers: list[int] = []
    wait = sandbox._wait_until_uid_empty

    def recording_wait(uid, grace=10.0):
        # Checked when the executor ends, while its uid is still locked: afterwards another
        # grading run (another pytest worker) may rightly reuse the uid.
        left = wait(uid, grace)
        leftovers.extend(left)
        return left

    sandbox._claim_uid, sandbox._wait_until_uid_empty = recording_claim, recording_wait
    try:
        run = grade_lab(course, LAB, workers=2, limits=Limits(timeout=20, memory_mb=3072, file_size_mb=16))
    finally:
        sandbox._claim_uid, sandbox._wait_until_uid_empty = claim, wait
    listener.close()
    run.uids = sorted(set(claimed))
    run.leftover_processes = leftovers
    return course, run, before, listener


def _status(run, student):
    return next(s for s in run.students if s.student == student)


def _outputs(course, student) -> str:
    """Everything the student's cells printed or raised (not their source)."""
    nb = nbformat.read(course.autograded / student / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    return "\n".join(str(output) for cell in nb.cells for output in cell.get("outputs", []))


def test_batch_goes_on_and_honest_students_keep_full_marks(hostile_class):
    course, run, _, _ = hostile_class
    assert run.sandboxed
    for student in ("honest", "zz_honest"):
        status = _status(run, student)
        assert (status.status, status.score, status.max_score) == (Status.GRADED, 3.0, 3.0)
    assert {s.student for s in run.students} == {"honest", "zz_honest", *HOSTILE}


def test_no_file_of_the_course_was_changed(hostile_class):
    course, run, before, _ = hostile_class
    assert [str(path) for path, digest in before.items() if _digest(path) != digest] == []
    assert "pwned" not in course.gradebook.read_text(errors="replace")
    assert _status(run, "honest").score == 3.0  # its autograded notebook is nbgrader's, not "pwned"
    nbformat.read(course.autograded / "honest" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    assert "blocked" in _outputs(course, "write_course") and "WROTE" not in _outputs(course, "write_course")


def test_hidden_tests_and_peers_cannot_be_read(hostile_class):
    course, run, _, _ = hostile_class
    outputs = _outputs(course, "read_secrets")
    assert "LEAK" not in outputs and "blocked" in outputs
    assert SECRET_MARKER not in outputs


def test_no_network(hostile_class):
    course, _, _, listener = hostile_class
    assert listener.connections == 0
    assert "CONNECTED" not in _outputs(course, "network")


def test_fork_bomb_is_capped_and_leaves_no_process(hostile_class):
    course, run, _, _ = hostile_class
    assert "fork stopped after" in _outputs(course, "fork_bomb")
    assert len(run.uids) > len(HOSTILE) and run.leftover_processes == []


def test_memory_hog_loses_the_points(hostile_class):
    course, run, _, _ = hostile_class
    status = _status(run, "memory_hog")
    assert status.status in (Status.GRADED, Status.CRASHED) and status.score == 0
    assert "MemoryError" in _outputs(course, "memory_hog")


def test_huge_file_is_stopped_at_the_size_limit(hostile_class):
    course, run, _, _ = hostile_class
    outputs = _outputs(course, "huge_file")
    assert "WROTE 1 GB" not in outputs and "blocked" in outputs
    assert not list(course.root.rglob("huge.bin"))


def test_the_executor_cannot_be_killed_from_the_notebook(hostile_class):
    """Forked sandboxes (as root): the executor is pid 1 of the student's pid namespace, so the kernel's
    SIGKILL to its parent is ignored and the notebook runs on; cold ones report the crash."""
    _, run, _, _ = hostile_class
    status = _status(run, "kill_parent")
    if os.geteuid() == 0:
        assert (status.status, status.score, status.max_score) == (Status.GRADED, 3.0, 3.0), status
    else:
        assert (status.status, status.score) == (Status.CRASHED, 0.0), status


@pytest.mark.parametrize(("student", "expected"), [
    ("infinite_loop", Status.TIMED_OUT), ("exit_kernel", Status.CRASHED), ("segfault", Status.CRASHED)])
def test_killed_notebooks_are_reported_with_zero(hostile_class, student, expected):
    course, run, _, _ = hostile_class
    status = _status(run, student)
    assert status.status == expected, status
    assert status.reason
    assert (status.score, status.max_score) == (0.0, 3.0)
