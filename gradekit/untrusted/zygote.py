"""The fork server: the lab's modules imported once, a fresh sandbox forked from it for each student.

Started by `gradekit.sandbox.forked.Zygote` inside a privileged bubblewrap (the same read-only view of the
system as a student's sandbox: no course, no network), as root with only the capabilities it needs
to build a sandbox per student (CAP_SYS_ADMIN for namespaces and mounts, CAP_NET_ADMIN for the
loopback, CAP_SETUID/CAP_SETGID to drop to the student's uid). It never runs student code itself:
it imports the lab's modules, the kernel and the executor, and waits for spawn requests.

Per student (`spawn`, with the student's pipes, log and cgroup files passed as file descriptors):
1. a child joins the student's cgroup (memory and processes of all its processes together) and
   unshares new mount, pid, network, ipc and uts namespaces;
2. its own child, pid 1 of the new pid namespace, mounts a fresh /proc, a fresh /tmp and a
   size-limited tmpfs at /submission, brings up its own loopback, and forks the kernel, which
   drops to the student's uid (no capabilities, no new privileges, the per-process limits) before
   it starts;
3. once the notebook arrives, pid 1 copies the submission's files into /submission, unmounts the
   grader's spool (other students' files are not reachable), drops to the same uid and becomes
   the executor (`execute.serve`) that drives the kernel cell by cell.
When pid 1 ends, the kernel kills everything left in its pid namespace; the mounts die with the
mount namespace. Nothing of one student (module patches, files, threads, processes) can reach the
next: each starts from the zygote's pristine memory, in new namespaces.

Protocol on the control socket (SOCK_SEQPACKET, one JSON message each): zygote -> grader
`{"event": "ready", "failed_imports": [...]}` once, then `{"event": "exited", "id", "status"}` per
student (status as `os.waitpid`'s); grader -> zygote `{"op": "spawn", "id", ...}` with fds
[commands (read end), results (write end), log, judge's requests (read end), judge's answers
(write end), *cgroup.procs]. The judge's channel goes straight to the kernel (`bridge.serve_channel`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import gc
import json
import os
import random
import shutil
import signal
import socket
import struct
import sys
import threading
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP = 0x20000000, 0x40000000, 0x02000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_MOVE = 1, 2, 4, 8, 32, 4096, 8192
MS_REC, MS_PRIVATE = 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SPOOL = "/spool"  # the grader's run directories, read-only; unmounted in each student's namespace
WORKDIR = "/submission"
NEW_TMP = "/.gradekit-tmp"  # an empty directory of the zygote's root (`gradekit.sandbox.executors`) where /tmp is built

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _mount(source: str | None, target: str, fstype: str | None, flags: int, options: str | None = None) -> None:
    _check(_libc.mount(_bytes(source), target.encode(), _bytes(fstype), flags, _bytes(options)), f"mount {target}")


def _loopback_up() -> None:
    """A new network namespace has only `lo`, down; the kernel's channels use it (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def _copy_tree(source: str, target: str, uid: int) -> None:
    """The submission's regular files and folders (no links, devices or fifos), owned by the student."""
    for entry in os.scandir(source):
        path = os.path.join(target, entry.name)
        if entry.is_dir(follow_symlinks=False):
            os.mkdir(path, 0o700)
            os.chown(path, uid, uid)
            _copy_tree(entry.path, path, uid)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, path, follow_symlinks=False)
            os.chown(path, uid, uid)
            os.chmod(path, 0o600)


def _drop_privileges(uid: int, limits: dict) -> None:
    """The student's uid for good: no capabilities (they go with uid 0), no new privileges (setuid
    binaries stay powerless), not dumpable (no ptrace of the executor), and the per-process limits."""
    import resource

    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), tuple(value))


def _close_fds_except(*keep: int) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 4096)


def _fresh_random_state() -> None:
    # A forked process starts with its parent's random state: a cold kernel would have drawn a fresh one.
    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _fresh_tmp(size_mb: int) -> None:
    """A new, empty /tmp for this student. Built at NEW_TMP, with the interpreter and venv re-bound
    read-only where they live under /tmp (a checkout in /tmp), then moved over the zygote's /tmp."""
    _mount("tmpfs", NEW_TMP, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=1777")
    for path in sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}):
        if not path.startswith("/tmp/"):
            continue
        target = NEW_TMP + path[len("/tmp"):]
        os.makedirs(target, mode=0o755, exist_ok=True)
        _mount(path, target, None, MS_BIND | MS_REC)
        _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(NEW_TMP, "/tmp", None, MS_MOVE)


def _start_kernel(connection_file: str, uid: int, limits: dict, extra_arguments: list[str],
                  channel: tuple[int, int]) -> int:
    """Fork the student's kernel (an IPython kernel, as `jupyter kernel` would start it), with the
    judge's channel (`bridge.serve_channel`) on the `channel` fds; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        _drop_privileges(uid, limits)
        _close_fds_except(1, 2, *channel)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(WORKDIR)
        os.environ.pop("JPY_PARENT_PID", None)  # no parent poller: its parent is pid 1 of the namespace
        _fresh_random_state()
        from ipykernel.kernelapp import IPKernelApp

        sys.argv = ["ipykernel_launcher", "-f", connection_file, *extra_arguments]
        app = IPKernelApp.instance()
        app.initialize(sys.argv[1:])
        import bridge

        bridge.serve_channel(*channel, app)
        app.start()
    finally:
        os._exit(0)
    return 0  # not reached


def _student_init(request: dict, result_fd: int, channel: tuple[int, int]) -> None:
    """pid 1 of the student's namespaces: build the sandbox, start the kernel, then serve the executor."""
    import execute
    from jupyter_client.connect import write_connection_file

    uid = int(request["uid"])
    run = str(request["run"])
    if "/" in run or run in ("", ".", ".."):
        raise ValueError("bad run name")
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _fresh_tmp(int(request["tmp_mb"]))
    disk_mb = int(request["disk_mb"])
    _mount("gradekit-workdir", WORKDIR, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={disk_mb}m,mode=0700,uid={uid},gid={uid},nr_inodes={max(4096, 64 * disk_mb)}")
    _loopback_up()
    socket.sethostname("sandbox")
    os.chdir(WORKDIR)
    # The kernel's connection file holds its channels' key: the student's uid may read it, as in a cold sandbox.
    runtime = "/tmp/.jupyter-runtime"
    os.makedirs(runtime, mode=0o700)
    connection_file = f"{runtime}/kernel.json"
    write_connection_file(connection_file, ip="127.0.0.1", transport="tcp", kernel_name="python3")
    for path in (connection_file, runtime):
        os.chown(path, uid, uid)
    settings = request["settings"]
    kernel_pid = _start_kernel(connection_file, uid, request["limits"], list(settings["execute"].get(
        "extra_arguments", [])), channel)
    for fd in channel:  # the kernel's now
        os.close(fd)

    def receive_files() -> None:  # once the notebook arrived, still root: then the student's uid
        _copy_tree(f"{SPOOL}/{run}", WORKDIR, uid)
        _check(_libc.umount2(SPOOL.encode(), MNT_DETACH), "umount spool")
        _drop_privileges(uid, request["limits"])
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "dumpable")

    execute.serve_forked(settings, result_fd, connection_file, kernel_pid, receive_files)


def _student_sandbox(request: dict, fds: list[int], control: socket.socket) -> None:
    """In a child of the zygote (root): into the student's cgroup and new namespaces; never returns."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    control.close()
    commands, results, log, channel_in, channel_out, *cgroups = fds
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    os.setsid()
    for fd in cgroups:  # before the namespaces: every process of the student is counted
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
    os.dup2(commands, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    for fd in (commands, log):
        if fd > 2:
            os.close(fd)
    _close_fds_except(results, channel_in, channel_out)
    # The cgroup namespace too, now that it is in its group: /proc/self/cgroup then shows "/".
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
                         | (CLONE_NEWCGROUP if cgroups else 0)), "unshare")
    init = os.fork()
    if init == 0:
        try:
            _student_init(request, results, (channel_in, channel_out))
            os._exit(0)
        except BaseException as error:  # noqa: BLE001 - reported in the log, then the exit code says it
            print(f"the sandbox stopped: {error!r}", file=sys.stderr, flush=True)
            os._exit(70)
    for fd in (results, channel_in, channel_out):
        os.close(fd)
    while True:
        try:
            _, status = os.waitpid(init, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 70)


def _import(modules: list[str]) -> list[str]:
    failed = []
    for name in modules:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - reported to the grader, which stops before grading anyone
            failed.append(name)
    return failed


def main() -> int:
    sys.modules.setdefault("rfc3987_syntax", None)  # see execute.main
    os.environ["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # (ipykernel.debugger imports pydevd; quiet it)
    settings = json.loads(sys.argv[1])
    control = socket.socket(fileno=settings["control_fd"])
    started = time.monotonic()
    failed = _import(list(settings.get("warm_modules", [])))
    # What each kernel and executor needs, loaded once here (none of it starts a thread or a socket).
    # (The second line: what a kernel's initialize() imports on top, ~0.1 s per student otherwise.)
    _import(["execute", "bridge", "wire", "ipykernel.kernelapp", "ipykernel.ipkernel", "nbclient", "nbformat",
             "jupyter_client", "matplotlib_inline.backend_inline", "IPython.core.interactiveshell",
             "ipykernel.debugger", "IPython.core.completerlib", "IPython.core.debugger", "IPython.core.oinspect",
             "IPython.extensions.storemagic", "IPython.utils.wildcard", "sqlite3", "tornado.gen", "tornado.locks",
             "tornado.platform.asyncio", "tornado.queues", "xmlrpc.client", "xmlrpc.server"])
    threads = threading.active_count()
    if threads != 1:  # a fork copies only the calling thread: nothing may run beside it
        print(f"the zygote's imports started {threads - 1} thread(s)", file=sys.stderr, flush=True)
    gc.collect()
    gc.freeze()  # the imported objects stay untouched in the children: their pages stay shared
    children: dict[int, str] = {}

    def send(message: dict) -> None:
        try:
            control.send(json.dumps(message).encode())
        except OSError:
            pass

    def reap(*_: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in children:
                send({"event": "exited", "id": children.pop(pid), "status": status})

    send({"event": "ready", "failed_imports": failed, "seconds": round(time.monotonic() - started, 2)})
    signal.signal(signal.SIGCHLD, reap)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1 << 20, 16)
        except InterruptedError:
            continue
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            return 1
        if not message:
            return 0  # the grader is gone
        try:
            request = json.loads(message)
        except ValueError:
            request = {}
        if request.get("op") != "spawn" or len(fds) < 5:
            for fd in fds:
                os.close(fd)
            continue
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # registered before it can be reaped
        pid = os.fork()
        if pid == 0:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                _student_sandbox(request, fds, control)
            finally:
                os._exit(70)
        children[pid] = str(request.get("id"))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
