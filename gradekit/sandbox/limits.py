"""Whole-sandbox limits: memory and process count for a tree of processes, and a disk quota.

The rlimits of `gradekit.sandbox.bwrap` are per process: three processes of 3 GB each pass a 4 GB RLIMIT_AS,
and RLIMIT_FSIZE bounds one file, not a thousand. This module adds limits that hold for the
sandbox as a whole, with what the kernel offers:

- cgroup v2 (memory controller available under our own cgroup): a parent group `gradekit`
  under our cgroup with +memory +pids delegated, and one leaf per sandbox (memory.max,
  memory.swap.max = 0, pids.max). Leaves only, because of the "no internal processes" rule.
- cgroup v1 (a writable memory hierarchy): a child of our own memory cgroup
  (memory.limit_in_bytes, memsw too when the kernel accounts swap) and, when writable, a child
  of our pids cgroup (pids.max).
- neither: nothing here applies; `mechanism()` says so, and only the rlimits hold.

Disk: `mount_workdir` puts a size-limited tmpfs on the sandbox's working directory (root only).
tmpfs pages are charged to the memory cgroup of the process that writes them, so a sandbox's
memory group should allow for its disk quota too (memory_mb + disk_mb).
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PREFIX = "gradekit"
_counter = itertools.count()
_detect_lock = threading.Lock()
_backend: _Backend | None = None
_unavailable: str | None = None  # why no cgroup mechanism applies, once detected


@dataclass(frozen=True)
class _Backend:
    version: int  # 1 or 2
    memory_parent: Path  # sandbox groups are created here
    pids_parent: Path | None  # v1 only: the pids hierarchy's parent (v2 has pids in the same group)
    swap: bool  # the kernel accounts swap (v1 memsw / v2 memory.swap.max)
    pids: bool  # a process-count limit is available

    def describe(self) -> str:
        what = "memory" + (" (no swap)" if self.swap else "") + (" and process count" if self.pids else "")
        where = str(self.memory_parent) + (f", {self.pids_parent}" if self.pids_parent else "")
        return f"cgroup v{self.version}: whole-sandbox {what} limits ({where})"


# --- where our cgroups are -----------------------------------------------------------------


def _own_cgroups() -> dict[str, str]:
    """Controller -> our cgroup path, from /proc/self/cgroup ("" is the v2 unified hierarchy)."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            own[controller.removeprefix("name=")] = path
    return own


def _cgroup_mounts() -> list[tuple[str, Path, str, set[str]]]:
    """(fstype, mount point, root inside the hierarchy, super options) of each cgroup mount."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            mountpoint = Path(fields[4].replace("\\040", " "))
            mounts.append((tail[0], mountpoint, fields[3], set(tail[2].split(","))))
    return mounts


def _below(mountpoint: Path, mount_root: str, path: str) -> Path:
    """Directory of cgroup `path` (as in /proc/self/cgroup) in a mount of the hierarchy at `mount_root`.

    In a container the mount's root is often our own cgroup, while /proc/self/cgroup shows the full path."""
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root + "/")):
        path = path[len(mount_root):]
    return mountpoint / path.lstrip("/")


# --- detection -----------------------------------------------------------------------------


def _write(path: Path, value: str) -> None:
    with open(path, "w") as stream:
        stream.write(value)


def _read(path: Path) -> str:
    return path.read_text().strip()


def _probe(parent: Path, files: list[str]) -> None:
    """Create and remove one group under `parent`: raises OSError when we may not."""
    probe = parent / f"{PREFIX}-probe-{os.getpid()}-{next(_counter)}"
    probe.mkdir()
    try:
        missing = [name for name in files if not (probe / name).exists()]
        if missing:
            raise OSError(errno.ENOENT, f"no {', '.join(missing)} in a new group under {parent}")
    finally:
        probe.rmdir()


def _enable_controllers(group: Path, controllers: list[str]) -> None:
    wanted = [c for c in controllers if c not in _read(group / "cgroup.subtree_control").split()]
    if wanted:
        _write(group / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))


def _detect_v2() -> _Backend | str:
    own_path = _own_cgroups().get("")
    mounts = [(point, root) for kind, point, root, _ in _cgroup_mounts() if kind == "cgroup2"]
    if own_path is None or not mounts:
        return "no cgroup v2 hierarchy"
    for point, root in mounts:
        own = _below(point, root, own_path)
        try:
            available = _read(own / "cgroup.controllers").split()
        except OSError:
            continue
        if "memory" not in available:
            continue
        controllers = ["memory"] + (["pids"] if "pids" in available else [])
        try:
            try:
                _enable_controllers(own, controllers)
            except OSError as error:
                # "No internal processes": our cgroup holds processes, so it cannot delegate
                # controllers. When it holds only us (a systemd unit with Delegate=yes, a
                # container's init), move ourselves into a leaf of it, as systemd recommends.
                if error.errno != errno.EBUSY or _read(own / "cgroup.procs").split() != [str(os.getpid())]:
                    return f"cgroup v2 at {own} cannot delegate memory ({error.strerror}; other processes in it)"
                supervisor = own / f"{PREFIX}-supervisor"
                supervisor.mkdir(exist_ok=True)
                _write(supervisor / "cgroup.procs", str(os.getpid()))
                _enable_controllers(own, controllers)
            parent = own / PREFIX
            parent.mkdir(exist_ok=True)
            _enable_controllers(parent, controllers)
            _probe(parent, ["memory.max"] + (["pids.max"] if "pids" in controllers else []))
        except OSError as error:
            return f"cgroup v2 at {own} not writable ({error.strerror or error})"
        return _Backend(2, parent, None, (parent / "memory.swap.max").exists(), "pids" in controllers)
    return "cgroup v2 without the memory controller"


def _probe_files(parent: Path) -> set[str]:
    """The files of a new group under `parent` (memory.swap.max exists only when swap is accounted)."""
    probe = parent / f"{PREFIX}-probe-{os.getpid()}-{next(_counter)}"
    probe.mkdir()
    try:
        return {entry.name for entry in probe.iterdir()}
    finally:
        probe.rmdir()


def _detect_v1() -> _Backend | str:
    own = _own_cgroups()
    hierarchies = {}
    for kind, point, root, options in _cgroup_mounts():
        if kind == "cgroup":
            for controller in ("memory", "pids"):
                if controller in options and controller in own and controller not in hierarchies:
                    hierarchies[controller] = _below(point, root, own[controller])
    memory = hierarchies.get("memory")
    if memory is None:
        return "no cgroup v1 memory hierarchy"
    try:
        files = _probe_files(memory)
    except OSError as error:
        return f"cgroup v1 memory at {memory} not writable ({error.strerror or error})"
    if "memory.limit_in_bytes" not in files:
        return f"cgroup v1 memory at {memory} has no memory.limit_in_bytes"
    pids = hierarchies.get("pids")
    if pids is not None:
        try:
            _probe(pids, ["pids.max"])
        except OSError:
            pids = None  # memory alone is still worth having
    return _Backend(1, memory, pids, "memory.memsw.limit_in_bytes" in files, pids is not None)


def _detect() -> _Backend | None:
    """The mechanism in use (detected once per process, with a probe group), or None."""
    global _backend, _unavailable
    with _detect_lock:
        if _backend is None and _unavailable is None:
            reasons = []
            for detect in (_detect_v2, _detect_v1):
                try:
                    found = detect()
                except OSError as error:  # unreadable /proc files: treat as absent
                    found = f"{detect.__name__}: {error}"
                if isinstance(found, _Backend):
                    _backend = found
                    break
                reasons.append(found)
            else:
                _unavailable = "; ".join(reasons)
        return _backend


def mechanism() -> str:
    """One line saying which whole-sandbox limits apply, for the grader to print once."""
    backend = _detect()
    if backend is not None:
        return backend.describe()
    return f"no writable cgroup ({_unavailable}): only per-process limits apply"


# --- one sandbox's group -------------------------------------------------------------------


def _pids_in(group: Path) -> list[int]:
    try:
        return [int(pid) for pid in _read(group / "cgroup.procs").split()]
    except OSError as error:
        # Removed meanwhile (another thread cleaning up the same sandbox): a removed group's open file reads
        # as ENODEV. No group, no processes.
        if isinstance(error, FileNotFoundError) or error.errno == errno.ENODEV:
            return []
        raise


def _counter_in(path: Path, key: str) -> int | None:
    """The value of `key` in a flat keyed file (memory.events, memory.oom_control)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


class SandboxGroup:
    """The cgroup(s) of one sandbox: a memory limit (and a process limit) for all its processes together."""

    def __init__(self, backend: _Backend, memory_group: Path, pids_group: Path | None) -> None:
        self.backend = backend
        self.memory_group = memory_group
        self.pids_group = pids_group  # v1 only; in v2 the memory group limits pids too
        self._closed = False
        self._final: tuple[bool, float | None] | None = None  # (oom_killed, peak_mb) once closed

    @property
    def groups(self) -> list[Path]:
        return [self.memory_group] + ([self.pids_group] if self.pids_group else [])

    @classmethod
    def create(cls, name: str, memory_mb: int, max_pids: int) -> SandboxGroup | None:
        """A new group limited to `memory_mb` (RAM, no swap) and `max_pids` tasks; None without cgroups."""
        backend = _detect()
        if backend is None:
            return None
        leaf = f"{PREFIX}-{os.getpid()}-{next(_counter)}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:80]}"
        memory_bytes = str(memory_mb * 1024 * 1024)
        created: list[Path] = []
        try:
            memory_group = backend.memory_parent / leaf
            memory_group.mkdir()
            created.append(memory_group)
            pids_group = None
            if backend.version == 2:
                _write(memory_group / "memory.max", memory_bytes)
                if (memory_group / "memory.swap.max").exists():
                    _write(memory_group / "memory.swap.max", "0")
                if backend.pids:
                    _write(memory_group / "pids.max", str(max_pids))
            else:
                # memsw (RAM + swap) must be set after, and not below, the RAM limit.
                _write(memory_group / "memory.limit_in_bytes", memory_bytes)
                if backend.swap:
                    _write(memory_group / "memory.memsw.limit_in_bytes", memory_bytes)
                if backend.pids_parent is not None:
                    pids_group = backend.pids_parent / leaf
                    pids_group.mkdir()
                    created.append(pids_group)
                    _write(pids_group / "pids.max", str(max_pids))
        except OSError as error:
            for group in reversed(created):
                try:
                    group.rmdir()
                except OSError:
                    pass
            warnings.warn(f"could not create the sandbox's cgroup {leaf}: {error}", stacklevel=2)
            return None
        return cls(backend, memory_group, pids_group)

    def join_fn(self) -> Callable[[], None]:
        """A preexec_fn for Popen: moves the child (before exec) into the group(s); its descendants follow.

        A failure raises in the child, so Popen fails instead of starting an unlimited sandbox."""
        targets = [str(group / "cgroup.procs") for group in self.groups]  # computed before fork

        def join() -> None:
            pid = str(os.getpid()).encode()
            for target in targets:
                fd = os.open(target, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return join

    def pids(self) -> list[int]:
        """The processes in the group now."""
        return sorted({pid for group in self.groups for pid in _pids_in(group)})

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group (also those forked meanwhile); True once it is empty."""
        kill_file = self.memory_group / "cgroup.kill"  # v2, Linux 5.14+: atomic, fork-safe
        if self.backend.version == 2 and kill_file.exists():
            try:
                _write(kill_file, "1")
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while pids := self.pids():
            for pid in pids:  # a fork between reading and killing shows up in the next round
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the group because the group ran out of memory."""
        if self._final is not None:
            return self._final[0]
        if self.backend.version == 2:
            return (_counter_in(self.memory_group / "memory.events", "oom_kill") or 0) > 0
        kills = _counter_in(self.memory_group / "memory.oom_control", "oom_kill")  # Linux 4.13+
        if kills is not None:
            return kills > 0
        # Older kernels: the limit was hit and the group was (or is) out of memory.
        return (_counter_in(self.memory_group / "memory.oom_control", "under_oom") or 0) > 0 or \
            int(_read(self.memory_group / "memory.failcnt") or 0) > 0

    def peak_mb(self) -> float | None:
        """Highest memory use of the group so far, in MB (None when the kernel does not say)."""
        if self._final is not None:
            return self._final[1]
        name = "memory.peak" if self.backend.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int(_read(self.memory_group / name)) / 2**20
        except (OSError, ValueError):
            return None

    def close(self, timeout: float = 5.0) -> None:
        """Kill what is left and remove the group(s). Idempotent; keeps oom_killed/peak_mb readable."""
        if self._closed:
            return
        self.kill_all(timeout)
        try:
            self._final = (self.oom_killed(), self.peak_mb())
        except OSError:
            self._final = (False, None)
        deadline = time.monotonic() + timeout
        for group in self.groups:
            while True:
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:  # EBUSY while the last killed tasks exit
                    if time.monotonic() > deadline:
                        warnings.warn(f"could not remove cgroup {group}: {error}", stacklevel=2)
                        break
                    self.kill_all(0.5)
                    time.sleep(0.02)
        self._closed = True

    def __enter__(self) -> SandboxGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- disk ----------------------------------------------------------------------------------

_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def mount_workdir(path: Path, size_mb: int, uid: int | None, max_files: int | None = None) -> bool:
    """Mount a tmpfs of `size_mb` on the empty directory `path` (mode 0700, owned by `uid`).

    Bounds the disk a sandbox can fill as a whole (RLIMIT_FSIZE bounds single files), and also the
    number of files (nr_inodes, default 64 per MB, at least 4096). False, having done nothing, when
    not root, `path` is not an empty directory, or the mount fails. Its pages count as memory of
    the memory cgroup of the process that writes them."""
    path = Path(path)
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    if not path.is_dir() or os.path.ismount(path) or any(path.iterdir()):
        return False
    options = f"size={size_mb}m,mode=0700,nr_inodes={max_files or max(4096, 64 * size_mb)}"
    if uid is not None:
        options += f",uid={uid},gid={uid}"
    result = _libc.mount(b"gradekit-workdir", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                         options.encode())
    return result == 0


def unmount_workdir(path: Path) -> bool:
    """Unmount a workdir tmpfs (its files are gone); lazily if still busy. True when it was mounted."""
    path = os.fsencode(Path(path))
    if not os.path.ismount(path):
        return False
    if _libc.umount2(path, 0) == 0:
        return True
    return _libc.umount2(path, _MNT_DETACH) == 0  # busy (a leftover process): detach now, free later


# --- what a killed run left -------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether `pid` still runs: a process that has exited but whose parent has not reaped it yet does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: the signal check above is all there is


def sweep_stale_groups() -> int:
    """Remove the cgroups of grading runs that died without closing them (SIGKILL, a host crash): their
    leftover tasks killed, the groups removed. A group is stale when the run whose pid it names is gone.
    Returns how many were removed."""
    backend = _detect()
    if backend is None:
        return 0
    removed = 0
    for parent in (backend.memory_parent, backend.pids_parent):
        if parent is None or not parent.is_dir():
            continue
        for group in parent.iterdir():
            match = re.fullmatch(rf"{PREFIX}-(\d+)-\d+-.*", group.name)
            if not group.is_dir() or match is None or pid_alive(int(match[1])):
                continue
            for _ in range(50):
                pids = _pids_in(group)
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    group.rmdir()
                    removed += 1
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
    return removed


def mounts_below(folder: Path) -> list[Path]:
    """Mount points at or below `folder` (deepest first), from /proc/self/mounts."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    root = os.path.realpath(folder)
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].encode().decode("unicode_escape")  # the kernel escapes spaces as \040
            if point == root or point.startswith(root + os.sep):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)
