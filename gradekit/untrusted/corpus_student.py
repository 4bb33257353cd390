"""The student's side of the corpus harness's fast mode (`gradekit.proof.corpus`): a small fork server.

Run as a script by the kernel runtime's interpreter (the Python and libraries the students have), with only
this folder on PYTHONPATH, by a corpus worker (the judge, in the grader's environment):

    python corpus_student.py COMMANDS_FD REPLIES_FD

It imports the labs' modules once and says `{"server": <pid>}`; then, for each `{"op": "entry", "cells":
[kernel sources], "cwd": folder}` line on the command pipe, it forks a child, the student's process for that
entry, which says `{"ready": <pid>}` and answers the worker's commands on the same pipes, one JSON line
each: `cell` (run the next code cell: hidden tests are never sent here), `bridge` (a judge's request,
`bridge.py`) and `end`. The server waits for the child and writes `{"exited": pid, "status", "cpu"}`.
Each entry starts from the server's pristine memory: nothing one entry does reaches the next.

Nothing here is trusted: student code can change any of it, and then only garbles its own entry's replies.
Runs on the grader's Python (3.11) and the runtime's (3.13); needs no IPython.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import os
import sys
import tempfile
import time

try:
    from . import bridge
except ImportError:  # run as a script: a top-level module next to this one
    import bridge  # type: ignore[no-redef]


def _import_heavy_modules() -> None:
    """What every lab imports, loaded once by the server so that forked children start warm."""
    import warnings

    warnings.simplefilter("ignore")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import seaborn  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import sklearn.preprocessing  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401

    # One thread and no parallel op in the server: OpenMP/MKL pools do not survive fork().
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    # The checks' gradient_check calls torch.func.grad, whose first call imports functorch, dynamo, sympy and
    # triton: ~1 s of CPU, paid once here rather than in every child (it starts no thread).
    import torch.func

    torch.func.grad(lambda x: (x * x).sum())(torch.ones(2, dtype=torch.float64))


def _display(*objects, **_kwargs) -> None:
    """IPython's `display` builtin, reduced to printing (the output does not affect grades)."""
    for obj in objects:
        print(repr(obj))


def _split_last_expression(source: str):
    """Compile a cell like IPython: statements, then the last bare expression evaluated for display."""
    tree = ast.parse(source)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not source.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    body = compile(tree, "<cell>", "exec")
    return body, (compile(last, "<cell>", "eval") if last is not None else None)


def _run_cell(source: str, namespace: dict) -> tuple[tuple[str, str] | None, str, str | None]:
    """Execute one cell; return (error, stderr text, repr of the displayed result)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    fd_err = tempfile.TemporaryFile()
    fd_out = tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(fd_out.fileno(), 1), os.dup2(fd_err.fileno(), 2)
    real = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr
    error, shown = None, None
    try:
        body, last = _split_last_expression(source)
        exec(body, namespace)
        if last is not None:
            value = eval(last, namespace)
            if value is not None:
                shown = repr(value)
    except BaseException as exc:  # noqa: B036 - like a kernel, every exception is a cell error
        error = (type(exc).__name__, str(exc))
    finally:
        sys.stdout, sys.stderr = real
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        os.close(saved[0]), os.close(saved[1])
    fd_err.seek(0)
    low_level = fd_err.read().decode(errors="replace")
    fd_err.close(), fd_out.close()
    return error, stderr.getvalue() + low_level, shown


class Lines:
    """Lines from a file descriptor, read with os.read: no buffer hides what is left in the pipe, and what was
    read past a line stays here (`pending`) for whoever reads next (a forked child inherits it)."""

    def __init__(self, fd: int, pending: bytes = b"") -> None:
        self.fd, self.pending = fd, pending

    def readline(self) -> bytes:
        """One line without its newline (b"" for an empty one); EOFError at the end of the pipe."""
        parts = [self.pending]
        while b"\n" not in parts[-1]:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.pending, rest = b"", b"".join(parts)
                if not rest:
                    raise EOFError
                return rest
            parts.append(chunk)
        line, _, self.pending = b"".join(parts).partition(b"\n")
        return line


def _write_line(fd: int, message: dict, newline_first: bool = False) -> None:
    data = (b"\n" if newline_first else b"") + json.dumps(message).encode() + b"\n"
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _serve_student_side(sources: list[str], commands: Lines, replies_fd: int) -> None:
    """The forked child: the student's process. Runs cells (hidden tests removed) and answers the judge."""
    # `In`: the cells run so far, as IPython keeps them (the checks cell's `answer_code` reads it).
    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": _display, "In": [""]}
    judge_side = bridge.Bridge(namespace)
    _write_line(replies_fd, {"ready": os.getpid()})
    while True:
        try:
            line = commands.readline()
        except EOFError:
            return
        if not line.strip():
            continue
        command = json.loads(line)
        if command["op"] == "cell":
            source = sources[command["index"]]
            if isinstance(namespace.get("In"), list):
                namespace["In"].append(source)
            started = time.perf_counter()
            error, stderr, _ = _run_cell(source, namespace)
            reply = {"error": error, "stderr": stderr[-2000:], "seconds": time.perf_counter() - started}
        elif command["op"] == "bridge":
            reply = {"reply": judge_side.serve(command["request"])}
        else:
            return
        _write_line(replies_fd, reply)


def _entry(line: bytes) -> dict | None:
    """The entry a command line asks for; None for anything else (what a killed child left unread)."""
    try:
        command = json.loads(line)
    except ValueError:
        return None
    return command if isinstance(command, dict) and command.get("op") == "entry" else None


def serve(commands_fd: int, replies_fd: int) -> None:
    """The server's loop: one forked child per entry, until the worker closes the command pipe."""
    _import_heavy_modules()
    _write_line(replies_fd, {"server": os.getpid()})
    commands = Lines(commands_fd)
    while True:
        try:
            entry = _entry(commands.readline())
        except EOFError:
            return
        if entry is None:
            continue
        # The worker sends nothing after an entry until the child says it is ready: `pending` is empty, and
        # whatever is in it would be the child's anyway (the child inherits it; the server forgets it).
        pending, commands.pending = commands.pending, b""
        sys.stdout.flush(), sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never return into the server's loop
            try:
                os.chdir(entry.get("cwd") or ".")
                _serve_student_side(entry["cells"], Lines(commands_fd, pending), replies_fd)
            finally:
                os._exit(0)
        _, status, usage = os.wait4(pid, 0)
        # A newline first: a reply the child had half written when it was killed ends there, not in this line.
        _write_line(replies_fd, {"exited": pid, "status": status, "cpu": usage.ru_utime + usage.ru_stime},
                    newline_first=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
