"""The sandbox's process: the bubblewrap command, its environment, its uid and its per-process rlimits.

What a sandboxed notebook sees: a read-only system (/usr, /etc, the venv and the Python
installation), a private /tmp, its own working copy at /submission (writable), and nothing
else: not the course (source/, release/, gradebook.db, autograded/, other submissions), not
/root, no network (own network namespace, so the kernel's ZMQ sockets live there too), its
own pid/ipc/uts namespaces. It runs as an unprivileged uid (a fresh one per executor), so
RLIMIT_NPROC is enforced (the kernel ignores it for root).

Per process: CPU time (RLIMIT_CPU), address space (RLIMIT_AS), processes (RLIMIT_NPROC), file
size (RLIMIT_FSIZE), no core dumps. The executors that use this: `gradekit.sandbox.executors`
(cold) and `gradekit.sandbox.forked` (forked from a zygote).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

from gradekit.sandbox.runtime import KernelRuntime
from gradekit.sandbox.settings import Limits

UNTRUSTED_DIR = Path(__file__).resolve().parents[1] / "untrusted"  # what runs in the student's process, nothing else
SANDBOX_CODE_DIR = "/opt/gradekit"
SANDBOX_WORKDIR = "/submission"
ZYGOTE_SPOOL = "/spool"
FIRST_SANDBOX_UID = 61000
SANDBOX_UIDS = 1000  # executors cycle through this many uids, so no two live ones share one

_uid_counter = itertools.count()
_uid_lock = threading.Lock()


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


UID_LOCKS = Path(tempfile.gettempdir()) / "gradekit-sandbox-uids"


def _claim_uid() -> tuple[int, int]:
    """A sandbox uid no other live executor uses, on this machine, and the lock that holds it.

    The lock (flock on a file per uid) is shared by every grader process, so two grading runs
    at once never hand the same uid to two students: same uid would let one kill the other."""
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    with _uid_lock:
        for _ in range(SANDBOX_UIDS):
            uid = FIRST_SANDBOX_UID + next(_uid_counter) % SANDBOX_UIDS
            fd = os.open(UID_LOCKS / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return uid, fd
            except BlockingIOError:
                os.close(fd)
    raise RuntimeError(f"all {SANDBOX_UIDS} sandbox uids are in use")


def processes_of_uid(uid: int) -> list[int]:
    alive = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            line = next(line for line in status.read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(line.split()[1]) == uid:
            alive.append(int(status.parent.name))
    return alive


def _wait_until_uid_empty(uid: int, grace: float = 10.0) -> list[int]:
    """Wait for the uid's processes to end (the pid namespace dies with the executor); the leftovers."""
    deadline = time.monotonic() + grace
    while (left := processes_of_uid(uid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _release_uid(uid: int, lock_fd: int) -> None:
    """Free a uid once none of its processes is left, so the next student's sandbox starts clean."""
    _wait_until_uid_empty(uid)
    os.close(lock_fd)


def address_space(limits: Limits, runtime: KernelRuntime) -> int:
    """RLIMIT_AS of a kernel's process, bytes: what the runtime's imports map, plus the notebook's own share."""
    return (runtime.import_mb + limits.memory_mb) * 1024 * 1024


def _limit_setter(limits: Limits, runtime: KernelRuntime):
    cpu = int(limits.cpu_seconds or limits.timeout) + 5
    memory = address_space(limits, runtime)
    fsize = limits.file_size_mb * 1024 * 1024

    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))

    return apply


def _environment(home: str, venv_bin: str, code_dir: str, threads: int | None = None) -> dict[str, str]:
    """The kernel's environment: what `nbgrader autograde` sets, plus private config dirs.

    PYTHONPATH lets the kernel import the judge channel's bridge (public code, not trusted)."""
    thread_limits = {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
                     } if threads else {}
    return {**thread_limits,
        "PYTHONPATH": code_dir,
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        # The sandbox's uid has no passwd entry: without a name in the environment `getpass.getuser()` fails,
        # and torch 2.11 (Colab's) calls it for its compile cache on the first optimizer step.
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "NBGRADER_EXECUTION": "autograde",
        "PYTHONWARNINGS": "ignore",
        "PYTHONDONTWRITEBYTECODE": "1",
        "JUPYTER_RUNTIME_DIR": f"{home}/.jupyter-runtime",
        "IPYTHONDIR": f"{home}/.ipython",
        "MPLCONFIGDIR": f"{home}/.matplotlib",
        "XDG_CACHE_HOME": f"{home}/.cache",
    }


def _parent_dirs(paths: list[str]) -> list[str]:
    """World-readable parent directories for bind mounts (bwrap would make them 0700)."""
    parents = sorted({str(parent) for path in paths for parent in Path(path).parents if str(parent) != "/"},
                     key=len)
    return [arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)]


ZYGOTE_CAPS = ("CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE")


def _bwrap_command(workdir: Path | None, env: dict[str, str], as_root: bool, spool: Path | None = None,
                   runtime: KernelRuntime | None = None) -> list[str]:
    """The sandbox of one student (`workdir`), or with `spool` the zygote's: the same view of the system, plus
    the grader's run directories read-only at /spool and the capabilities to build a sandbox per student.
    `runtime`: the Python environment the kernel runs in (default: the grader's)."""
    runtime = runtime or KernelRuntime.grader()
    command = [bwrap_path() or "bwrap"]
    if spool is not None:
        for capability in ZYGOTE_CAPS:
            command += ["--cap-add", capability]
    elif as_root:
        # Privileged bwrap (no user namespace): the executor starts as root with only the caps
        # to change uid and drops to a fresh unprivileged uid first thing, so that uid's
        # RLIMIT_NPROC is enforced (the kernel ignores it for uid 0 and for root mapped in a
        # user namespace).
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command += ["--unshare-user"]
    command += [
        # (The zygote keeps the grader's cgroup namespace: each student's sandbox unshares its own.)
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        *(["--unshare-cgroup-try"] if spool is None else []),
        "--die-with-parent", "--new-session", "--clearenv",
        "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
    ]
    for name in ("bin", "lib", "lib64", "sbin"):
        target = Path("/", name)
        if target.is_symlink():
            command += ["--symlink", os.readlink(target), f"/{name}"]
        elif target.is_dir():
            command += ["--ro-bind", str(target), f"/{name}"]
    command += ["--proc", "/proc", "--dev", "/dev", "--size", str(256 * 1024 * 1024), "--tmpfs", "/tmp"]
    if Path("/sys/devices/system/cpu").is_dir():  # torch reads the CPU topology
        command += ["--ro-bind", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    # Only the kernel runtime's Python installation and environment, read-only: the rest of the
    # repository (the course) and /root do not exist in the sandbox.
    command += _parent_dirs([runtime.base_prefix, runtime.prefix, SANDBOX_CODE_DIR])
    command += ["--ro-bind", runtime.base_prefix, runtime.base_prefix,
                "--ro-bind", runtime.prefix, runtime.prefix,
                "--ro-bind", str(UNTRUSTED_DIR), SANDBOX_CODE_DIR]
    if spool is not None:
        command += ["--ro-bind", str(spool), ZYGOTE_SPOOL, "--dir", SANDBOX_WORKDIR, "--dir", "/.gradekit-tmp",
                    "--chdir", "/"]
    else:
        command += ["--bind", str(workdir), SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    for key, value in env.items():
        command += ["--setenv", key, value]
    return command


def _rlimits(limits: Limits, runtime: KernelRuntime) -> dict[str, tuple[int, int]]:
    """The per-process limits of `_limit_setter`, as data for the zygote's children."""
    cpu = int(limits.cpu_seconds or limits.timeout) + 5
    memory, fsize = address_space(limits, runtime), limits.file_size_mb * 1024 * 1024
    return {"RLIMIT_CPU": (cpu, cpu + 5), "RLIMIT_AS": (memory, memory), "RLIMIT_FSIZE": (fsize, fsize),
            "RLIMIT_CORE": (0, 0), "RLIMIT_NPROC": (limits.processes, limits.processes)}
