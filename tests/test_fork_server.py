"""The fork server: students graded one after another by the same zygote see nothing of each other."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from gradekit.judge.driver import run_judged
from gradekit.sandbox.bwrap import bwrap_path, processes_of_uid
from gradekit.sandbox.executors import WATCHDOG_GRACE
from gradekit.sandbox.forked import ForkedExecutor
from gradekit.sandbox.launch import Sandbox
from gradekit.sandbox.settings import Limits

pytestmark = [
    pytest.mark.skipif(bwrap_path() is None or os.geteuid() != 0, reason="the fork server needs bwrap and root"),
    pytest.mark.xdist_group("sandbox"),
]

# The first student leaves everything behind that a process can: patched modules (at import level, in
# sys.modules, a C function swapped), a changed environment, files in /tmp, /dev/shm and the working
# folder, a background thread, a child process, a daemon that left its session, a listening socket.
LEAVE_LEFTOVERS = r'''
import os, sys, json, threading, subprocess, socket, time, torch, numpy
torch.sigmoid = lambda t: t * 0
torch.nn.functional.binary_cross_entropy = lambda *a, **k: torch.tensor(0.0)
import math; math.sqrt = lambda x: -1.0
numpy.mean = lambda *a, **k: 42
sys.modules["sklearn"].FORGED = True
import builtins; builtins.LEFTOVER = "yes"
os.environ["LEFTOVER"] = "yes"
for path in ("/tmp/leftover", "/dev/shm/leftover", "leftover.txt"):
    try:
        open(path, "w").write("from the first student")
    except OSError:
        pass
threading.Thread(target=lambda: time.sleep(600), name="leftover-thread", daemon=True).start()
subprocess.Popen(["sleep", "600"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            open("/tmp/daemon", "w").write(str(time.time()))
            time.sleep(0.05)
    os._exit(0)
server = socket.socket(); server.bind(("127.0.0.1", 47111)); server.listen()
print("left", os.getpid())
'''

LOOK_FOR_LEFTOVERS = r'''
import os, sys, json, threading, socket, torch, numpy, builtins
found = []
if float(torch.sigmoid(torch.tensor(0.0))) != 0.5: found.append("torch.sigmoid patched")
if float(torch.nn.functional.binary_cross_entropy(torch.tensor([0.5]), torch.tensor([1.0]))) == 0.0:
    found.append("F.binary_cross_entropy patched")
import math
if math.sqrt(4.0) != 2.0: found.append("math.sqrt patched")
if numpy.mean([1, 2]) != 1.5: found.append("numpy.mean patched")
if getattr(sys.modules["sklearn"], "FORGED", False): found.append("sklearn attribute")
if hasattr(builtins, "LEFTOVER"): found.append("builtins")
if "LEFTOVER" in os.environ: found.append("environment")
for path in ("/tmp/leftover", "/tmp/daemon", "/dev/shm/leftover", "leftover.txt"):
    if os.path.exists(path): found.append(path)
if any(t.name == "leftover-thread" for t in threading.enumerate()): found.append("thread")
mine = {os.getpid(), os.getppid()}
others = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) not in mine:
        try:
            others.append(open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip())
        except OSError:
            pass
others = [c for c in others if c]
if others: found.append(f"processes {others}")
try:
    socket.create_connection(("127.0.0.1", 47111), timeout=1).close(); found.append("socket")
except OSError:
    pass
print("FOUND", json.dumps(found))
'''


def _notebook(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])


def _run(sandbox: Sandbox, source: str):
    executor = sandbox.start()
    assert isinstance(executor, ForkedExecutor)
    assert executor.ready() is None
    return executor, run_judged(executor, _notebook(source), {})


def test_a_student_leaves_nothing_for_the_next_one(tmp_path: Path):
    sandbox = Sandbox(tmp_path / "runs", Limits(timeout=60), True, ["torch", "numpy", "sklearn"],
                      {"timeout": 30, "interrupt_on_timeout": True})
    (tmp_path / "runs").mkdir()
    try:
        # The control: the same look in a sandbox that is still running the first student's leftovers
        # would find them (so the look can fail).
        first, result = _run(sandbox, LEAVE_LEFTOVERS + "\n" + LOOK_FOR_LEFTOVERS)
        printed = "".join(o.get("text", "") for o in result.notebook.cells[0].outputs)
        assert result.status == "done", (result.reason, first._log_tail())
        assert "torch.sigmoid patched" in printed and "/tmp/leftover" in printed and "thread" in printed
        assert "sleep 600" in printed, printed
        deadline = time.monotonic() + 10
        while processes_of_uid(first.uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_of_uid(first.uid) == [], "the first student's processes outlived their sandbox"
        assert first.process.stdin.closed and first._channel.closed, "the sandbox's pipes stay open in the grader"

        second, result = _run(sandbox, LOOK_FOR_LEFTOVERS)
        assert second.uid != first.uid
        printed = "".join(o.get("text", "") for o in result.notebook.cells[0].outputs)
        assert result.status == "done", (result.reason, second._log_tail())
        assert json.loads(printed.split("FOUND", 1)[1]) == [], printed
    finally:
        sandbox.close()


def test_a_forked_kernel_is_limited_like_a_cold_one(tmp_path: Path):
    """Own uid, no capabilities, no new privileges, the limits, no network, the student's files only."""
    sandbox = Sandbox(tmp_path / "runs", Limits(timeout=60, processes=123), True, ["torch"],
                      {"timeout": 30, "interrupt_on_timeout": True})
    (tmp_path / "runs").mkdir()
    source = r'''
import os, resource, socket, json
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2); network = True
except OSError:
    network = False
spool = os.listdir("/spool") if os.path.isdir("/spool") else []
cgroup = open("/proc/self/cgroup").read().split(":")[-1].strip()
print("FACTS", json.dumps({"uid": os.getuid(), "caps": status["CapEff"].strip(),
    "nonewprivs": status["NoNewPrivs"].strip(), "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
    "files": sorted(os.listdir(".")), "cwd": os.getcwd(), "spool": spool,
    "network": network, "hostname": socket.gethostname(), "cgroup": cgroup}))
'''
    try:
        executor = sandbox.start()
        assert executor.ready() is None
        (executor.workdir / "data.csv").write_text("1,2\n")
        result = run_judged(executor, _notebook(source), {})
        printed = "".join(o.get("text", "") for o in result.notebook.cells[0].outputs)
        facts = json.loads(printed.split("FACTS", 1)[1])
        assert facts["uid"] == executor.uid and facts["uid"] != 0
        assert facts["caps"] == "0000000000000000" and facts["nonewprivs"] == "1"
        assert facts["nproc"] == 123
        assert facts["files"] == ["data.csv"] and facts["cwd"] == "/submission"
        assert facts["spool"] == [], "other students' run folders must not be reachable"
        assert facts["network"] is False and facts["hostname"] == "sandbox"
        if executor.group:
            assert facts["cgroup"] == "/"
    finally:
        sandbox.close()


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "cold"])
def test_the_course_kernel_settings_reach_the_kernel(tmp_path: Path, fork: bool):
    """nbgrader_config.py's `Execute.extra_arguments` (plain tracebacks: IPython's default parses every
    frame's source file, ~85 ms an error) apply to gradekit's kernels as to nbgrader's own."""
    from gradekit.course.directory import REPO_ROOT, Course
    from gradekit.grading.run import execute_settings

    settings = execute_settings(Course(REPO_ROOT).config())
    assert "--InteractiveShell.xmode=Plain" in settings["extra_arguments"]
    sandbox = Sandbox(tmp_path / "runs", Limits(timeout=60), True, ["torch"], settings, fork=fork)
    (tmp_path / "runs").mkdir()
    source = "def answer(x):\n    raise NotImplementedError()\n\nanswer(1)"
    try:
        executor = sandbox.start()
        assert executor.ready() is None
        result = run_judged(executor, _notebook(source), {})
        error = result.notebook.cells[0].outputs[-1]
        assert error.output_type == "error" and error.ename == "NotImplementedError"
        text = "".join(error.traceback)
        assert text.startswith("Traceback") and "raise NotImplementedError()" in text
        assert "---->" not in text, "IPython's context tracebacks: the course's kernel arguments were ignored"
    finally:
        sandbox.close()


@pytest.mark.parametrize("fork", [True, False])
def test_the_watchdog_ends_a_sandbox_past_its_deadline_wherever_the_grader_is(tmp_path: Path, fork: bool):
    """The grader's thread may be elsewhere (waiting on the judge's own work) when a notebook's deadline
    passes: the sandbox is killed then anyway, and the notebook reads as timed out."""
    sandbox = Sandbox(tmp_path / "runs", Limits(timeout=2), True, ["torch"],
                      {"timeout": 30, "interrupt_on_timeout": True}, fork=fork)
    (tmp_path / "runs").mkdir()
    executor = None
    try:
        executor = sandbox.start()
        assert executor.ready() is None
        assert executor.start(_notebook("import time\nwhile True:\n    time.sleep(0.1)")) is None
        # Nobody asks the sandbox anything from here on.
        give_up = time.monotonic() + 2 + WATCHDOG_GRACE + 15
        while not executor.overdue and time.monotonic() < give_up:
            time.sleep(0.1)
        assert executor.overdue
        while processes_of_uid(executor.uid) and time.monotonic() < give_up:
            time.sleep(0.1)
        assert processes_of_uid(executor.uid) == [], "the sandbox outlived its deadline"
        event = executor.command({"op": "cell", "index": 0}, expect="cell")
        assert (event["event"], event["status"]) == ("failed", "timed out")
    finally:
        if executor is not None:
            executor.kill()
        sandbox.close()
