"""Whole-sandbox limits against the real kernel: cgroup memory and pids limits, and the tmpfs workdir."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradekit.sandbox import limits as sandbox_limits
from gradekit.sandbox.limits import SandboxGroup, mount_workdir, unmount_workdir

needs_cgroup = pytest.mark.skipif(sandbox_limits._detect() is None, reason=sandbox_limits.mechanism())
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs workdir needs root")

# Three children that each allocate and touch 200 MB, then hold it while the others do.
CHILD = "b = bytearray(200 * 2**20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nimport time; time.sleep(2)"
PARENT = f"""
import subprocess, sys
children = [subprocess.Popen([sys.executable, "-c", {CHILD!r}]) for _ in range(3)]
print(*[child.wait() for child in children], flush=True)
"""
FORKER = """
import os, time
started, error = 0, None
for _ in range(50):
    try:
        pid = os.fork()
    except OSError as e:
        error = e.errno
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    started += 1
print(started, error, flush=True)
time.sleep(60)
"""


def _run_tree(group: SandboxGroup) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PARENT], preexec_fn=group.join_fn(), capture_output=True,
                          text=True, timeout=60)


def _touch(megabytes: int) -> None:
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1


@needs_cgroup
def test_memory_limit_holds_for_the_whole_tree():
    with SandboxGroup.create("oom", memory_mb=400, max_pids=64) as group:
        result = _run_tree(group)
        codes = result.stdout.split()
        # Each child is under the limit alone; together they are not: the kernel kills in the group.
        assert result.returncode == -9 or "-9" in codes, (result.returncode, result.stdout, result.stderr)
        assert group.oom_killed()
        assert group.peak_mb() is not None and group.peak_mb() <= 401
    _touch(200)  # the test's own process, outside the group, is not limited
    assert group.oom_killed()  # still known after close

    with SandboxGroup.create("roomy", memory_mb=2048, max_pids=64) as group:
        result = _run_tree(group)
        assert result.returncode == 0 and result.stdout.split() == ["0", "0", "0"], result.stderr
        assert not group.oom_killed()
        assert group.peak_mb() > 600  # all three held their 200 MB at once


@needs_cgroup
def test_process_limit_and_kill_all():
    if not sandbox_limits._detect().pids:
        pytest.skip(f"no pids controller: {sandbox_limits.mechanism()}")
    with SandboxGroup.create("pids", memory_mb=1024, max_pids=20) as group:
        forker = subprocess.Popen([sys.executable, "-c", FORKER], preexec_fn=group.join_fn(),
                                  stdout=subprocess.PIPE, text=True)
        started, error = forker.stdout.readline().split()
        assert int(started) < 20 and error == str(errno.EAGAIN)
        assert forker.pid in group.pids() and len(group.pids()) == int(started) + 1
        assert group.kill_all()
        assert group.pids() == []
        assert forker.wait(timeout=10) == -9
        forker.stdout.close()


@needs_cgroup
def test_close_removes_the_groups():
    group = SandboxGroup.create("close", memory_mb=100, max_pids=10)
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=group.join_fn())
    assert group.pids() == [sleeper.pid]
    assert all(path.is_dir() for path in group.groups)
    group.kill_all()
    group.close()
    assert sleeper.wait(timeout=10) == -9
    assert not any(path.exists() for path in group.groups)
    group.close()  # idempotent

    # Processes already gone (or never started): nothing to kill, the groups still go.
    group = SandboxGroup.create("close-done", memory_mb=100, max_pids=10)
    subprocess.run(["true"], preexec_fn=group.join_fn(), check=True)
    group.close()
    assert not any(path.exists() for path in group.groups)

    # Processes still running at close are killed first.
    group = SandboxGroup.create("close-running", memory_mb=100, max_pids=10)
    sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=group.join_fn())
    group.close()
    assert sleeper.wait(timeout=10) == -9
    assert not any(path.exists() for path in group.groups)


def test_mechanism_is_one_line():
    line = sandbox_limits.mechanism()
    assert line and "\n" not in line
    assert line.startswith("cgroup v") == (sandbox_limits._detect() is not None)


@needs_root
def test_tmpfs_workdir_bounds_the_disk(tmp_path: Path):
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "file").write_text("x")
    assert not mount_workdir(tmp_path / "full", 20, None)  # never hides existing files
    assert mount_workdir(work, 20, uid=61234)
    try:
        assert os.path.ismount(work) and not mount_workdir(work, 20, None)
        info = os.stat(work)
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (61234, 61234, 0o700)
        vfs = os.statvfs(work)
        assert vfs.f_blocks * vfs.f_frsize == 20 * 2**20
        written = 0
        with pytest.raises(OSError) as raised:
            for i in range(100):
                (work / f"f{i:03d}").write_bytes(b"\1" * 2**20)
                written += 1
        assert raised.value.errno == errno.ENOSPC
        assert 15 <= written <= 20
        # The files live in the tmpfs (its own device), not on the host's disk.
        assert os.stat(work / "f000").st_dev == info.st_dev != os.stat(tmp_path).st_dev
    finally:
        assert unmount_workdir(work)
    assert not os.path.ismount(work) and list(work.iterdir()) == []
    (work / "after").write_text("usable")
    assert not unmount_workdir(work)  # not mounted any more: nothing to do


def test_a_group_removed_while_it_is_read_has_no_processes(monkeypatch):
    """Two threads may clean up one sandbox at once (a worker retiring it, Ctrl-C aborting the pool): a group
    removed under a reader reads as ENODEV, which means no processes, not an internal error."""

    def removed(path):
        raise OSError(errno.ENODEV, "No such device")

    monkeypatch.setattr(sandbox_limits, "_read", removed)
    assert sandbox_limits._pids_in(Path("/sys/fs/cgroup/gone")) == []

    def other(path):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sandbox_limits, "_read", other)
    with pytest.raises(PermissionError):
        sandbox_limits._pids_in(Path("/sys/fs/cgroup/gone"))
