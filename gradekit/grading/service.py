"""`gradekit serve`: a course's grading service, kept warm between commands.

A one-student regrade pays a run's fixed cost before its notebook runs: the sandboxes' zygote importing the
kernel runtime (Colab's torch: seconds), the judges' zygote importing the grader's torch, nbgrader's workers
importing nbgrader, the command importing the grader. The service pays it once: it keeps what each lab's last
run opened (`gradekit.grading.kept`) and runs the `grade` commands handed to it (`service_client.forward`) in its
own process, one at a time, with the course lock as any command takes it, its output streamed to the command.

Isolation is today's: each notebook is forked into its own namespaces, uid, /tmp and cgroup from a zygote that
never runs student code, judged by a judge forked for it alone. What a run reads (the config, the release, the
gradebook, the hidden tests) is read afresh by every run; resources kept are only those a run with the same
runtime, imports, limits and settings would open.

The socket is in a folder only this user can open (0700), and a connection from another user is refused.
Protocol, one JSON object per line: a command sends `{"op": "grade", "argv": [...], "cwd": ...}` and may
send `{"op": "interrupt"}`; the service answers `{"stream": "out"|"err", "text": ...}` lines, then `{"exit": code}`,
or `{"busy": ...}` at once when another command holds it. `{"op": "status"}` and `{"op": "stop"}` are answered
at once. It stops after `idle_seconds` without a command, on `stop`, SIGTERM, SIGHUP or Ctrl-C: the run in
hand ends as an interrupted one does (what was written is whole), then every kept process is stopped.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from gradekit.course.exits import EXIT_FAILED, EXIT_INTERRUPTED, UsageError, interrupts_as_keyboard_interrupt
from gradekit.grading.kept import KeptLabs
from gradekit.grading.service_client import MAX_MESSAGE, ask, socket_dir, socket_path

# handle(argv, cwd, kept_labs) -> exit code: runs one command (the command layer gives it: `gradekit.commands.serve`)
Handler = Callable[[list[str], str, KeptLabs], int]
GREETING_SECONDS = 5.0  # a connection says what it wants within this, or is closed


class Relay(io.TextIOBase):
    """A text stream whose writes go to the command as `{"stream": name, "text": ...}` lines; thread-safe (the
    progress bars write from the grader's threads). A command gone away makes writes no-ops."""

    def __init__(self, connection: socket.socket, name: str, lock: threading.Lock) -> None:
        self.connection, self.name, self.lock = connection, name, lock

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            send(self.connection, {"stream": self.name, "text": text}, self.lock)
        return len(text)


def send(connection: socket.socket, message: dict, lock: threading.Lock | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    try:
        if lock is None:
            connection.sendall(data)
        else:
            with lock:
                connection.sendall(data)
    except OSError:
        pass  # the command went away: the run goes on to its end (it was told to stop, or it was killed)


def peer_uid(connection: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return uid


def private_socket_dir() -> Path:
    """This user's socket folder, created 0700; refused if anyone else could reach a socket in it."""
    folder = socket_dir()
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise UsageError(f"{folder} is not a folder of this user's alone (mode 0700): remove it, then serve again")
    return folder


class Service:
    """Serves one course until stopped (see the module's docstring)."""

    def __init__(self, course_root: Path, handle: Handler, idle_seconds: float,
                 warm_up: Callable[[KeptLabs], None] | None = None, log=sys.stderr) -> None:
        self.course_root, self.handle, self.idle_seconds = course_root, handle, idle_seconds
        self.warm_up, self.log = warm_up, log
        self.kept = KeptLabs()
        self.path = socket_path(course_root)
        self.started = time.time()
        self.requests: queue.Queue = queue.Queue()
        self.slot = threading.Lock()  # held while a command runs: one at a time
        self.running = ""  # what runs now, for `status` and `busy`
        self.served = 0
        self.ready = False  # warmed up: the labs asked for are kept
        self.stopping = ""  # why the service stops, once it does
        self._state = threading.Lock()
        self._interruptible = False  # a relayed interrupt may stop the command in hand (the main thread)
        self._relayed = False  # the command in hand was interrupted from its own terminal

    # ------------------------------------------------------------ life

    def serve(self) -> str:
        """Serve until stopped; why it stopped."""
        private_socket_dir()
        answer = ask(self.course_root, {"op": "status"}, timeout=2.0)
        if answer is not None:
            raise UsageError(f"a grading service already serves {self.course_root} (pid {answer.get('pid')}): "
                             "`gradekit serve --stop` stops it")
        self.path.unlink(missing_ok=True)  # left by a service that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o600)
            listener.listen(16)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
            with interrupts_as_keyboard_interrupt():
                try:
                    if self.warm_up is not None:
                        self.warm_up(self.kept)
                    self.ready = True
                    self._say(f"serving {self.course_root} (pid {os.getpid()}); stops after "
                              f"{self.idle_seconds / 60:g} min without a command, or `gradekit serve --stop`")
                    self._loop()
                except KeyboardInterrupt:
                    self.stopping = self.stopping or "interrupted"
        finally:
            listener.close()
            self.path.unlink(missing_ok=True)
            self._turn_away()
            self.kept.close()
        self._say(f"stopped ({self.stopping}); every kept process stopped")
        return self.stopping

    def _loop(self) -> None:
        last = time.monotonic()
        while not self.stopping:
            try:
                request = self.requests.get(timeout=max(0.0, last + self.idle_seconds - time.monotonic()))
            except queue.Empty:
                self.stopping = f"no command for {self.idle_seconds / 60:g} min"
                return
            if request is None:  # woken by `stop`
                continue
            connection, reader, message = request
            try:
                self._run(connection, reader, message)
            finally:
                connection.close()
                self.slot.release()
            last = time.monotonic()

    def _turn_away(self) -> None:
        """Commands queued when the service stops run in their own process instead (`busy`)."""
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                send(request[0], {"busy": "stopping"})
                request[0].close()
                self.slot.release()

    def _say(self, text: str) -> None:
        print(f"gradekit serve: {text}", file=self.log, flush=True)

    # ------------------------------------------------------------ connections (their own threads)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed: the service stops
            threading.Thread(target=self._greet, args=(connection,), daemon=True).start()

    def _greet(self, connection: socket.socket) -> None:
        keep = False
        try:
            if peer_uid(connection) != os.geteuid():
                return
            connection.settimeout(GREETING_SECONDS)
            reader = connection.makefile("rb")
            message = json.loads(reader.readline(MAX_MESSAGE))
            op = message.get("op") if isinstance(message, dict) else None
            if op == "status":
                send(connection, self.status())
            elif op == "stop":
                self.stopping = self.stopping or "asked to stop"
                send(connection, {"stopping": True, "pid": os.getpid(), "running": self.running})
                self.requests.put(None)
            elif op == "grade" and isinstance(message.get("argv"), list) and isinstance(message.get("cwd"), str):
                if self.stopping or not self.slot.acquire(blocking=False):
                    send(connection, {"busy": self.running or "stopping"})
                    return
                connection.settimeout(None)
                self.requests.put((connection, reader, message))
                keep = True
        except (OSError, ValueError):
            pass
        finally:
            if not keep:
                connection.close()

    def status(self) -> dict:
        return {"pid": os.getpid(), "course": str(self.course_root), "since": self.started,
                "idle_seconds": self.idle_seconds, "served": self.served, "running": self.running, "ready": self.ready,
                "labs": self.kept.summary()}

    # ------------------------------------------------------------ one command (the main thread)

    def _run(self, connection: socket.socket, reader, message: dict) -> None:
        argv = [str(arg) for arg in message["argv"]]
        self.running = " ".join(["grade", *argv])[:200]
        lock = threading.Lock()
        out, err = Relay(connection, "out", lock), Relay(connection, "err", lock)
        done = threading.Event()
        self._relayed = False
        threading.Thread(target=self._listen, args=(reader, done), daemon=True).start()
        code = EXIT_INTERRUPTED
        try:
            with redirect_stdout(out), redirect_stderr(err):
                print(f"gradekit serve (pid {os.getpid()}) runs this command, warm; `--no-serve` runs it in the "
                      "command's own process", file=err)
                with self._state:
                    self._interruptible = True
                try:
                    code = self.handle(argv, message["cwd"], self.kept)
                finally:
                    with self._state:
                        self._interruptible = False
        except KeyboardInterrupt:  # a relayed interrupt landing just after the command ended
            pass
        except SystemExit as exit_:  # argparse refusing the arguments
            code = exit_.code if isinstance(exit_.code, int) else 2
        except Exception as error:  # noqa: BLE001 - a bug of ours costs this command, never the service
            code = EXIT_FAILED
            send(connection, {"stream": "err", "text": f"gradekit grade: internal error in the service "
                                                       f"({type(error).__name__}); details in its log\n"}, lock)
            traceback.print_exc(file=self.log)
        finally:
            done.set()
            self.running = ""
            self.served += 1
        if code == EXIT_INTERRUPTED and not self._relayed:  # SIGTERM, SIGHUP or Ctrl-C to the service itself
            self.stopping = self.stopping or "interrupted"
        send(connection, {"exit": code}, lock)

    def _listen(self, reader, done: threading.Event) -> None:
        """The command asks to stop its run (Ctrl-C there) or goes away: the run stops as on Ctrl-C here."""
        while not done.is_set():
            try:
                line = reader.readline(MAX_MESSAGE)
            except OSError:
                line = b""
            if not line or b"interrupt" in line:
                with self._state:
                    if self._interruptible and not done.is_set():
                        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                        self._interruptible, self._relayed = False, True
                return
