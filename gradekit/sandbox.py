"""Run one student notebook in a bubblewrap sandbox with resource limits.

What a sandboxed notebook sees: a read-only system (/usr, /etc, the venv and the Python
installation), a private /tmp, its own working copy at /submission (writable), and nothing
else: not the course (source/, release/, gradebook.db, autograded/, other submissions), not
/root, no network (own network namespace, so the kernel's ZMQ sockets live there too), its
own pid/ipc/uts namespaces. It runs as an unprivileged uid (a fresh one per executor), so
RLIMIT_NPROC is enforced (the kernel ignores it for root).

Limits: wall time for the whole notebook (the process group is killed), CPU time
(RLIMIT_CPU), address space (RLIMIT_AS), processes (RLIMIT_NPROC), file size (RLIMIT_FSIZE),
no core dumps, and caps on the bytes read back (per line, before parsing, and in total). For
the sandbox as a whole, where the kernel offers it (`gradekit.sandbox_limits`): memory and
processes of all its processes together in a cgroup (v2, or v1), and /submission on a
size-limited tmpfs. Where it does not, the grader says so and the per-process limits remain.

Without bwrap (or with sandboxed=False) the same executor runs with the limits only.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.sandbox_limits import SandboxGroup, mount_workdir, unmount_workdir

UNTRUSTED_DIR = Path(__file__).with_name("untrusted")  # what runs in the student's process, and nothing else
EXECUTOR_SCRIPT = UNTRUSTED_DIR / "execute.py"
SANDBOX_CODE_DIR = "/opt/gradekit"
SANDBOX_EXECUTOR = f"{SANDBOX_CODE_DIR}/execute.py"
SANDBOX_WORKDIR = "/submission"
ZYGOTE_SPOOL = "/spool"
ZYGOTE_SCRIPT = f"{SANDBOX_CODE_DIR}/zygote.py"
FIRST_SANDBOX_UID = 61000
SANDBOX_UIDS = 1000  # executors cycle through this many uids, so no two live ones share one
MAX_RESULT_BYTES = 256 * 1024 * 1024  # all that one submission may send back
MAX_EVENT_BYTES = 32 * 1024 * 1024  # one cell's outputs or one answer of the bridge
STARTUP_TIMEOUT = 120.0  # kernel start and warm imports, before the notebook's own clock starts

_uid_counter = itertools.count()
_uid_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    timeout: float = 300.0  # whole notebook, wall-clock seconds
    memory_mb: int = 4096  # address space per process (torch reserves ~1.5 GB of it at import)
    cpu_seconds: int | None = None  # per process; default: the wall timeout
    processes: int = 256  # tasks (processes and threads) of the sandbox's uid, and of its cgroup
    file_size_mb: int = 64
    sandbox_memory_mb: int = 6144  # all processes of one sandbox together (cgroup), files in /submission apart
    disk_mb: int = 512  # /submission: a tmpfs of this size (its pages count in the cgroup too)
    # CPU threads of one notebook's numeric libraries (torch's OpenMP, MKL, OpenBLAS); None: their default
    # (every core). `grade` gives each of N workers its share of the cores: N notebooks at once with a
    # thread per core each would spin-wait against each other.
    threads: int | None = None


@dataclass
class ExecutionResult:
    status: str  # "done", "timed out", "crashed"
    reason: str
    notebook: NotebookNode  # the input notebook with the outputs of the cells that ran
    seconds: float
    log_tail: str = ""
    judge_seconds: float = 0.0  # wall time in the judge (its own work and the kernel's answers)
    judge_cpu: float = 0.0  # CPU time of the judge's own work (references, comparisons, decoding)


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


def _limit_setter(limits: Limits):
    cpu = int(limits.cpu_seconds or limits.timeout) + 5
    memory = limits.memory_mb * 1024 * 1024
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


def _bwrap_command(workdir: Path | None, env: dict[str, str], as_root: bool, spool: Path | None = None) -> list[str]:
    """The sandbox of one student (`workdir`), or with `spool` the zygote's: the same view of the system, plus
    the grader's run directories read-only at /spool and the capabilities to build a sandbox per student."""
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
    # Only the Python installation and the venv of the repository, read-only: the rest of the
    # repository (the course) and /root do not exist in the sandbox.
    command += _parent_dirs([sys.base_prefix, sys.prefix, SANDBOX_CODE_DIR])
    command += ["--ro-bind", sys.base_prefix, sys.base_prefix,
                "--ro-bind", sys.prefix, sys.prefix,
                "--ro-bind", str(UNTRUSTED_DIR), SANDBOX_CODE_DIR]
    if spool is not None:
        command += ["--ro-bind", str(spool), ZYGOTE_SPOOL, "--dir", SANDBOX_WORKDIR, "--dir", "/.gradekit-tmp",
                    "--chdir", "/"]
    else:
        command += ["--bind", str(workdir), SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    for key, value in env.items():
        command += ["--setenv", key, value]
    return command


def capped_lines(read_end: int):
    """The lines read from a sandbox's pipe, each and all together capped before anyone parses them;
    None once a cap is passed (then nothing more is read)."""
    received = 0
    with os.fdopen(read_end, "rb") as stream:
        while line := stream.readline(MAX_EVENT_BYTES + 1):
            received += len(line)
            if len(line) > MAX_EVENT_BYTES or received > MAX_RESULT_BYTES:
                yield None
                return
            yield line


class RunningExecutor:
    """A started executor (kernel up, modules imported) waiting for its notebook."""

    def __init__(self, workdir: Path, limits: Limits, sandboxed: bool, warm_modules: list[str],
                 execute_settings: dict) -> None:
        self.workdir = workdir
        self.limits = limits
        self.sandboxed = sandboxed
        self.events: queue.Queue = queue.Queue()
        self._cleanup_lock, self._cleaned = threading.Lock(), False
        self.log_path = workdir.with_suffix(".log")
        workdir.mkdir(parents=True)
        read_end, write_end = os.pipe()
        as_root = os.geteuid() == 0
        uid, self._uid_lock_fd = _claim_uid() if sandboxed and as_root else (None, None)
        self.uid = uid
        # Whole-sandbox bounds, where the kernel offers them (gradekit.sandbox_limits.mechanism() says which).
        self.disk_limited = sandboxed and mount_workdir(workdir, limits.disk_mb, uid)
        self.group = SandboxGroup.create(workdir.name, limits.sandbox_memory_mb + limits.disk_mb,
                                         limits.processes) if sandboxed else None
        if uid is not None:
            os.chown(workdir, uid, uid)
        cwd = SANDBOX_WORKDIR if sandboxed else str(workdir)
        settings = {"result_fd": write_end, "cwd": cwd, "warm_modules": warm_modules,
                    "execute": execute_settings, "uid": uid}
        python = str(Path(sys.prefix, "bin", "python"))
        executor = SANDBOX_EXECUTOR if sandboxed else str(EXECUTOR_SCRIPT)
        if sandboxed:
            env = _environment("/tmp", str(Path(sys.prefix, "bin")), SANDBOX_CODE_DIR, limits.threads)
            command = [*_bwrap_command(workdir, env, as_root), python, executor, json.dumps(settings)]
            popen_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            home = workdir.with_suffix(".home")
            home.mkdir()
            command = [python, executor, json.dumps(settings)]
            popen_env = _environment(str(home), str(Path(sys.prefix, "bin")), str(UNTRUSTED_DIR), limits.threads)
        join_group, set_limits = (self.group.join_fn() if self.group else None), _limit_setter(limits)

        def preexec() -> None:  # in the child, before exec: into the cgroup first, then the rlimits
            if join_group:
                join_group()
            set_limits()

        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=popen_env,
                pass_fds=[write_end], start_new_session=True, preexec_fn=preexec, cwd=str(workdir))
        os.close(write_end)
        self.reader = threading.Thread(target=self._read_events, args=(read_end,), daemon=True)
        self.reader.start()

    def _read_events(self, read_end: int) -> None:
        """Parse what the sandbox sends, line by line, each line and the total capped before parsing."""
        for line in capped_lines(read_end):
            if line is None:
                self.events.put({"event": "too much output"})
                return
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                self.events.put({"event": "garbled"})
                return
            self.events.put(event)
        self.events.put({"event": "closed"})

    def kill(self) -> None:
        """Kill the sandbox and clean up after it; safe to call twice and from two threads at once
        (a worker finishing its notebook while Ctrl-C aborts the pool)."""
        self._kill_processes()
        with self._cleanup_lock:
            if not self._cleaned:
                self._clean_up()
                self._cleaned = True

    def _kill_processes(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _clean_up(self) -> None:
        self.process.wait()
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except OSError:  # unsent commands to an executor the student's code killed
                pass
        if self.group:
            self.group.close()  # leftovers of the sandbox, daemons included
        if self.disk_limited:
            self.disk_limited = not unmount_workdir(self.workdir)
        if self._uid_lock_fd is not None:
            _release_uid(self.uid, self._uid_lock_fd)
            self._uid_lock_fd = None

    def _next_event(self, deadline: float) -> dict | None:
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def ready(self) -> str | None:
        """Wait until the kernel is up with the lab's modules imported: None, or why it is not."""
        if not hasattr(self, "_readiness"):
            self._readiness = self._wait_ready()
        return self._readiness

    def _wait_ready(self) -> str | None:
        event = self._next_event(time.monotonic() + STARTUP_TIMEOUT)
        if event is None:
            return "the kernel did not start in time"
        if event["event"] != "ready":
            return "the kernel could not start" + (f" ({self._log_tail().strip().splitlines()[-1][:200]})"
                                                   if self._log_tail().strip() else "")
        failed = event.get("failed_imports")
        if isinstance(failed, list) and failed:
            return f"the lab's imports failed in the sandbox: {', '.join(str(f)[:60] for f in failed[:5])}"
        return None

    def warm(self) -> None:
        """Get ready in the background, before the notebook comes (a cold sandbox does from its start)."""

    def start(self, nb: NotebookNode) -> str | None:
        """Hand the executor the notebook it runs (hidden tests removed); None, or why it cannot run."""
        problem = self.ready()
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.timeout
        return problem or self._send(json.dumps(nb))

    def _send(self, line: str) -> str | None:
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return "the executor died before it got the notebook"
        return None

    def command(self, message: dict, expect: str) -> dict:
        """Send one command; the answer event, or `{"event": "failed", "status", "reason"}`."""
        event = self._command(message, expect)
        return self._unless_out_of_memory(event)

    def _unless_out_of_memory(self, event: dict) -> dict:
        if self.group and self.group.oom_killed():
            # Over the whole sandbox's memory: some process was killed; the notebook stops here, as a whole.
            if event["event"] != "failed":
                self.kill()
            return {"event": "failed", "status": "crashed",
                    "reason": f"the notebook's processes used more than {self.limits.sandbox_memory_mb} MB "
                              "of memory together"}
        return event

    def _command(self, message: dict, expect: str) -> dict:
        if self._send(json.dumps(message)) is not None:
            self.process.wait()
            return {"event": "failed", "status": "crashed", "reason": _exit_reason(self.process.returncode)}
        event = self._next_event(self.deadline)
        if event is None:
            return {"event": "failed", "status": "timed out",
                    "reason": f"the notebook ran longer than {self.limits.timeout:g} s"}
        kind = event["event"]
        if kind == expect:
            return event
        if kind == "crashed":
            return {"event": "failed", "status": "crashed", "reason": str(event.get("reason", ""))[:300]}
        if kind == "too much output":
            return {"event": "failed", "status": "crashed",
                    "reason": f"more than {MAX_EVENT_BYTES // 2**20} MB of output at once"}
        self.process.wait()
        return {"event": "failed", "status": "crashed", "reason": _exit_reason(self.process.returncode)}

    def finish(self) -> float:
        """Stop the executor; the seconds its notebook ran."""
        self._send(json.dumps({"op": "end"}))
        self.kill()
        return time.monotonic() - self.started

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_bytes()[-2000:].decode(errors="replace")
        except OSError:
            return ""


def _rlimits(limits: Limits) -> dict[str, tuple[int, int]]:
    """The per-process limits of `_limit_setter`, as data for the zygote's children."""
    cpu = int(limits.cpu_seconds or limits.timeout) + 5
    memory, fsize = limits.memory_mb * 1024 * 1024, limits.file_size_mb * 1024 * 1024
    return {"RLIMIT_CPU": (cpu, cpu + 5), "RLIMIT_AS": (memory, memory), "RLIMIT_FSIZE": (fsize, fsize),
            "RLIMIT_CORE": (0, 0), "RLIMIT_NPROC": (limits.processes, limits.processes)}


def _zygote_limits(limits: Limits) -> None:
    """The zygote imports under the students' address-space limit (its forks inherit its mappings:
    the lab's imports must fit, as in a cold sandbox); no core dumps."""
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Zygote:
    """The fork server (`untrusted/zygote.py`): one warm interpreter, with the lab's modules imported, from
    which each student's sandbox is forked (own uid, namespaces, /tmp, /submission and cgroup).

    It runs in a privileged bubblewrap with the same view of the system as a student's sandbox and the
    capabilities to build one; it never runs student code. One per grading machine and run: the
    imports (~4 s of CPU) are paid once, not per student."""

    def __init__(self, spool: Path, warm_modules: list[str], limits: Limits) -> None:
        self.log_path = spool.with_name("zygote.log")
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._lock = threading.Lock()
        self._on_exit: dict[str, Callable[[int | None], None]] = {}
        self._ready = threading.Event()
        self._problem: str | None = "the fork server did not start"
        self.seconds: float | None = None  # what its imports took
        env = {**_environment("/tmp", str(Path(sys.prefix, "bin")), SANDBOX_CODE_DIR, limits.threads),
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # as the kernel will set it
        settings = {"control_fd": theirs.fileno(), "warm_modules": warm_modules}
        command = [*_bwrap_command(None, env, True, spool=spool), str(Path(sys.prefix, "bin", "python")),
                   ZYGOTE_SCRIPT, json.dumps(settings)]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, pass_fds=[theirs.fileno()],
                start_new_session=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                preexec_fn=lambda: _zygote_limits(limits))
        theirs.close()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if event.get("event") == "ready":
                failed = event.get("failed_imports") or []
                self._problem = (f"the lab's imports failed in the sandbox: {', '.join(map(str, failed[:5]))}"
                                 if failed else None)
                self.seconds = event.get("seconds")
                self._ready.set()
            elif event.get("event") == "exited":
                with self._lock:
                    callback = self._on_exit.pop(str(event.get("id")), None)
                if callback:
                    callback(event.get("status"))
        # The zygote is gone: its children went with it (pid namespace); nobody waits forever.
        with self._lock:
            self._problem = self._problem or "the fork server stopped"
            callbacks, self._on_exit = list(self._on_exit.values()), {}
        self._ready.set()
        for callback in callbacks:
            callback(None)

    def ready(self) -> str | None:
        if not self._ready.wait(STARTUP_TIMEOUT):
            return "the fork server did not start in time"
        return self._problem

    def spawn(self, request: dict, fds: list[int], on_exit: Callable[[int | None], None]) -> str | None:
        with self._lock:
            if self._problem:
                return self._problem
            self._on_exit[str(request["id"])] = on_exit
            try:
                socket.send_fds(self._sock, [json.dumps(request).encode()], fds)
            except OSError as error:
                self._on_exit.pop(str(request["id"]), None)
                return f"the fork server is gone ({error.strerror})"
        return None

    def close(self) -> None:
        self._sock.close()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


class _ForkedProcess:
    """The part of `subprocess.Popen` an executor uses, for a sandbox forked by the zygote."""

    def __init__(self, stdin_fd: int) -> None:
        self.stdin = os.fdopen(stdin_fd, "wb")
        self.returncode: int | None = None
        self._exited = threading.Event()

    def exited(self, status: int | None) -> None:
        self.returncode = -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = 30.0) -> int | None:
        self._exited.wait(timeout)
        return self.returncode


class ForkedExecutor(RunningExecutor):
    """An executor whose sandbox is forked from the zygote when it is asked to get ready."""

    _ids = itertools.count()

    def __init__(self, zygote: Zygote, workdir: Path, limits: Limits, execute_settings: dict) -> None:
        self.zygote, self.workdir, self.limits, self.sandboxed = zygote, workdir, limits, True
        self.execute_settings = execute_settings
        self.events = queue.Queue()
        self._cleanup_lock, self._cleaned = threading.Lock(), False
        self.log_path = workdir.with_suffix(".log")
        workdir.mkdir(parents=True)
        self.uid, self._uid_lock_fd = _claim_uid()
        self.disk_limited = False  # /submission is a tmpfs of the sandbox's own mount namespace
        self.group = SandboxGroup.create(workdir.name, limits.sandbox_memory_mb + limits.disk_mb, limits.processes)
        self.process = None
        self.started = time.monotonic()
        self._ready_lock = threading.Lock()  # one spawn, whoever asks first; the others wait for its answer
        self._state_lock, self._killed = threading.Lock(), False  # no spawn once killed

    def warm(self) -> None:
        """Fork the sandbox now, in the background, so that it is ready when its notebook comes
        (a kernel takes ~0.35 s to get ready: paid while the worker's current notebook runs)."""
        threading.Thread(target=self.ready, name="gradekit-spawn", daemon=True).start()

    def ready(self) -> str | None:
        with self._ready_lock:
            if not hasattr(self, "_readiness"):
                self._readiness = self._spawn()
            return self._readiness

    def _spawn(self) -> str | None:
        problem = self.zygote.ready()
        if problem:
            return problem
        with self._state_lock:
            if self._killed:
                return "the sandbox was stopped before it started"
            problem = self._send_spawn()
        return problem or self._wait_ready()

    def _send_spawn(self) -> str | None:
        commands_read, commands_write = os.pipe()
        results_read, results_write = os.pipe()
        requests_read, requests_write = os.pipe()  # the judge's channel, straight to the kernel
        replies_read, replies_write = os.pipe()
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        cgroups = [os.open(group / "cgroup.procs", os.O_WRONLY) for group in self.group.groups] if self.group else []
        self.process = _ForkedProcess(commands_write)
        self._channel = os.fdopen(requests_write, "wb")
        self._replies: queue.Queue = queue.Queue()
        request = {"op": "spawn", "id": f"{os.getpid()}-{next(self._ids)}", "run": self.workdir.name,
                   "uid": self.uid, "limits": _rlimits(self.limits), "disk_mb": self.limits.disk_mb, "tmp_mb": 256,
                   "settings": {"cwd": SANDBOX_WORKDIR, "execute": self.execute_settings}}
        try:
            problem = self.zygote.spawn(request, [commands_read, results_write, log, requests_read, replies_write,
                                                  *cgroups], self.process.exited)
        finally:
            for fd in (commands_read, results_write, log, requests_read, replies_write, *cgroups):
                os.close(fd)
        if problem:
            self.process.exited(None)
            os.close(results_read)
            os.close(replies_read)
            return problem
        self.reader = threading.Thread(target=self._read_events, args=(results_read,), daemon=True)
        self.reader.start()
        threading.Thread(target=self._read_replies, args=(replies_read,), daemon=True).start()
        return None

    def _read_replies(self, read_end: int) -> None:
        """The kernel's answers on the judge's channel, capped like the executor's events."""
        for line in capped_lines(read_end):
            if line is None:
                self._replies.put(("too much output", None))
                return
            self._replies.put(("reply", line.decode("utf-8", errors="replace")))
        self._replies.put(("closed", None))

    def bridge(self, request: str) -> dict:
        """One request on the judge's channel: `{"event": "bridge", "reply"}`, or `{"event": "failed", ...}`.

        A call may take as long as a cell (the course's per-cell timeout): then the kernel is interrupted
        and the judge is told the call timed out; the notebook's own deadline still holds."""
        try:
            self._channel.write(request.encode() + b"\n")
            self._channel.flush()
        except (OSError, ValueError):
            return self._failed("closed")
        per_call = float(self.execute_settings.get("timeout") or self.limits.timeout)
        kind, reply = self._next_reply(min(self.deadline, time.monotonic() + per_call))
        if kind is None and time.monotonic() < self.deadline:
            self._send(json.dumps({"op": "interrupt"}))
            kind, reply = self._next_reply(min(self.deadline, time.monotonic() + 10.0))
            if kind == "reply":
                reply = json.dumps({"error": {"type": "TimeoutError",
                                              "message": f"did not return within {per_call:g} s"}})
        event = {"event": "bridge", "reply": reply} if kind == "reply" else self._failed(kind)
        return self._unless_out_of_memory(event)

    def _next_reply(self, deadline: float) -> tuple[str | None, str | None]:
        try:
            return self._replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None, None

    def _failed(self, kind: str | None) -> dict:
        if kind is None:
            return {"event": "failed", "status": "timed out",
                    "reason": f"the notebook ran longer than {self.limits.timeout:g} s"}
        if kind == "too much output":
            return {"event": "failed", "status": "crashed",
                    "reason": f"more than {MAX_EVENT_BYTES // 2**20} MB of output at once"}
        return {"event": "failed", "status": "crashed", "reason": "the kernel died while the judge called a function"}

    def _kill_processes(self) -> None:
        with self._state_lock:
            self._killed = True
        if self.process is None or self.process.poll() is not None:
            return
        if self.group:
            self.group.kill_all()
        else:  # no cgroup here: every process of the student's uid (pid 1 of its namespace first)
            while pids := processes_of_uid(self.uid):
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.01)

    def _clean_up(self) -> None:
        if self.process is not None:
            if self.process.wait(10.0) is None:
                self._kill_processes()
            for stream in (self.process.stdin, self._channel):  # the commands, and the judge's requests
                try:
                    stream.close()
                except OSError:
                    pass
        if self.group:
            self.group.close()
        if self._uid_lock_fd is not None:
            _release_uid(self.uid, self._uid_lock_fd)
            self._uid_lock_fd = None


def _exit_reason(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"the notebook's process was killed by {signal.Signals(-returncode).name}"
    return f"the notebook's process exited (code {returncode}) before the end"


def mark_not_run(nb: NotebookNode, reason: str) -> None:
    """Give every code cell that did not run an error output, so nbgrader scores its test cells 0.

    (nbgrader gives full points to a test cell without an error output, so an empty output
    would reward a notebook that was stopped before its tests.)
    """
    for cell in nb.cells:
        if cell.cell_type == "code" and not cell.metadata.pop("gradekit_ran", False):
            cell.outputs = [nbformat.v4.new_output(
                "error", ename="NotRun", evalue=reason,
                traceback=[f"NotRun: this cell was not run: {reason}"])]
    for cell in nb.cells:
        cell.metadata.pop("gradekit_ran", None)


@dataclass
class Sandbox:
    """Starts executors, sandboxed when bwrap is available and wanted."""

    scratch: Path
    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True
    warm_modules: list[str] = field(default_factory=list)
    execute_settings: dict = field(default_factory=dict)

    fork: bool = True  # a zygote forks each sandbox (sandboxed, as root); else each starts cold

    def __post_init__(self) -> None:
        self.sandboxed = self.sandboxed and bwrap_path() is not None
        self.fork = self.fork and self.sandboxed and os.geteuid() == 0
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._zygote: Zygote | None = None

    def prepare(self) -> None:
        """Start the zygote now (its imports take seconds), not at the first `start()`."""
        with self._lock:
            if self.fork and self._zygote is None:
                self._zygote = Zygote(self.scratch, self.warm_modules, self.limits)

    def start(self) -> RunningExecutor:
        self.prepare()
        with self._lock:
            workdir = self.scratch / f"run{next(self._counter):05d}"
        if self.fork:
            return ForkedExecutor(self._zygote, workdir, self.limits, self.execute_settings)
        return RunningExecutor(workdir, self.limits, self.sandboxed, self.warm_modules,
                               self.execute_settings)

    def close(self) -> None:
        """Stop the zygote (the executors it forked are stopped by their own `kill`)."""
        with self._lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()


def copy_into(executor: RunningExecutor, files: Path) -> None:
    """Copy a submission's working files into a started executor's working directory.

    Not its notebooks: the sanitized notebook on the grader's side holds the hidden tests; the
    kernel gets the notebook over its pipe, without them."""
    shutil.copytree(files, executor.workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.ipynb"))
    stat = executor.workdir.stat()
    for path in [executor.workdir, *executor.workdir.rglob("*")]:
        os.chown(path, stat.st_uid, stat.st_gid) if os.geteuid() == 0 else None
