"""The executor that runs one student notebook, started inside the sandbox by `gradekit.sandbox.executors`.

Run as a script (`python execute.py '<json settings>'`); it trusts nothing and nothing trusts it:
everything it sends back is data that the grader parses under limits. Protocol:

1. start the kernel (the execution logic of nbgrader's `Execute` preprocessor, configured like the course's
   `nbgrader autograde`), import the lab's heavy modules in it ("warm" executor), write `{"event": "ready"}`
   on the result pipe (an fd given in the settings);
2. read from stdin, one JSON line each: first the notebook to run (test cells hold their visible checks
   only: hidden tests never come here), then commands:
   - `{"op": "cell", "index": i}`: execute cell i, answer `{"event": "cell", "index", "outputs",
     "execution_count"}` (or `{"event": "crashed", "reason"}` when the kernel died);
   - `{"op": "bridge", "request": "<json>"}`: evaluate `bridge.serve(request)` in the kernel as a user
     expression (no history, no execution count), answer `{"event": "bridge", "reply": "<json>"}`;
   - `{"op": "interrupt"}` (forked sandboxes, whose judge's channel goes straight to the kernel):
     interrupt the kernel;
   - `{"op": "end"}`: stop.

The grader drives the notebook cell by cell so that the trusted judge can check each test cell at its
place in the notebook, against the kernel's state at that moment.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

PR_SET_DUMPABLE = 4


def _protect_from_kernel(result_fd: int) -> None:
    # The kernel runs as the same user; a non-dumpable process cannot be ptraced, nor can its
    # /proc/<pid>/fd be opened, so student code cannot write fake results into our pipe.
    # The kernel itself is dumpable again (execve resets the flag).
    try:
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    # Close whatever else the sandbox handed down; the kernel inherits nothing of ours.
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 1024)
    os.set_inheritable(result_fd, False)


class ResultPipe:
    def __init__(self, fd: int) -> None:
        self.stream = os.fdopen(fd, "w", buffering=1)

    def send(self, event: str, **fields) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()


def _make_executor(settings: dict, km=None):
    """A kernel client that executes cells exactly as nbgrader's `Execute` preprocessor does.

    nbgrader 0.9.6's `Execute` is nbconvert's ExecutePreprocessor (an nbclient client) with the
    course's trait values (passed in `settings["execute"]`) and the `on_cell_executed` hook
    below. Importing nbgrader itself costs ~1.5 s of CPU, paid here once per submission, so
    the same client is built on nbclient directly; the grader's tests and `gradekit bench`
    check that scores stay identical to plain `nbgrader autograde`."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.notebooknode import NotebookNode

    class GradingClient(NotebookClient):
        def on_cell_executed(self, **kwargs) -> None:  # nbgrader's: record errors a timeout left unrecorded
            cell, reply = kwargs["cell"], kwargs["execute_reply"]
            if reply["content"]["status"] != "error":
                return
            if any(o.output_type == "error" and o.ename == reply["content"]["ename"] for o in cell.outputs):
                return
            error = NotebookNode(output_type="error", ename=reply["content"]["ename"],
                                 evalue=reply["content"]["evalue"], traceback=reply["content"]["traceback"])
            if error.traceback == []:
                error.traceback = ["ERROR: An error occurred while showtraceback was disabled"]
            cell.outputs.append(error)

    executor = GradingClient(nbformat.v4.new_notebook(), kernel_name="python3", **settings["execute"])
    if km is None:
        executor.km = executor.create_kernel_manager()
        executor.start_new_kernel(cwd=settings["cwd"])
    else:  # a kernel forked from the warm zygote, already starting
        executor.km = km
    executor.start_new_kernel_client()
    return executor


def _warm_up(executor, modules: list[str]) -> list[str]:
    """Import the lab's modules in the kernel, silently (no history, no outputs); the ones that failed."""
    import ast

    if not modules:
        return []
    code = "__gradekit_failed = []\n" + "\n".join(
        f"try:\n    __import__({name!r})\nexcept Exception:\n    __gradekit_failed.append({name!r})"
        for name in modules)
    msg_id = executor.kc.execute(code, silent=True, store_history=False,
                                 user_expressions={"failed": "__gradekit_failed"})
    reply = executor.wait_for_reply(msg_id)
    executor.wait_for_reply(executor.kc.execute("del __gradekit_failed", silent=True, store_history=False))
    try:
        return list(ast.literal_eval(reply["content"]["user_expressions"]["failed"]["data"]["text/plain"]))
    except Exception:
        return list(modules)


def _start_notebook(executor, nb, cwd: str) -> None:
    executor.nb = nb
    executor.resources = {"metadata": {"path": cwd}}
    executor.reset_execution_trackers()
    info = executor.wait_for_reply(executor.kc.kernel_info())
    nb.metadata["language_info"] = info["content"]["language_info"]


def _run_cell(executor, nb, index: int, pipe: ResultPipe) -> bool:
    """Execute one cell; False when the kernel died."""
    from nbclient.exceptions import DeadKernelError

    cell = nb.cells[index]
    try:
        executor.execute_cell(cell, index, store_history=True)
    except DeadKernelError:
        pipe.send("crashed", reason=f"the kernel died in cell {index} (exit, segfault or memory limit)")
        return False
    pipe.send("cell", index=index, outputs=cell.get("outputs", []), execution_count=cell.get("execution_count"))
    return True


def _bridge(executor, request: str, pipe: ResultPipe) -> bool:
    """Ask the kernel's bridge; the answer is the repr of a JSON string (IPython formats user expressions).

    Waits like a cell (the course's per-cell timeout, then the kernel is interrupted); False when the
    kernel died."""
    import ast

    from nbclient.exceptions import DeadKernelError

    expression = f"__import__('bridge').serve({request!r})"
    msg_id = executor.kc.execute("", silent=True, store_history=False, user_expressions={"r": expression})
    try:
        reply = executor.wait_for_reply(msg_id)
    except DeadKernelError:
        pipe.send("crashed", reason="the kernel died while the judge called a function")
        return False
    if reply is None:
        text = json.dumps({"error": {"type": "TimeoutError",
                                     "message": f"did not return within {executor.timeout} s"}})
    else:
        result = reply["content"].get("user_expressions", {}).get("r", {})
        try:
            text = ast.literal_eval(result["data"]["text/plain"])
        except Exception:
            text = json.dumps({"error": {"type": "BridgeError",
                                         "message": str(result.get("evalue", "no answer"))[:500]}})
    pipe.send("bridge", reply=text)
    return True


def _serve(executor, cwd: str, pipe: ResultPipe, on_notebook=None, interrupt=None) -> None:
    import nbformat

    nb = nbformat.reads(sys.stdin.readline(), as_version=4)
    if on_notebook is not None:
        on_notebook()
    _start_notebook(executor, nb, cwd)
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "cell":
            if not _run_cell(executor, nb, command["index"], pipe):
                return
        elif command["op"] == "bridge":
            if not _bridge(executor, command["request"], pipe):
                return
        elif command["op"] == "interrupt" and interrupt is not None:  # a judge's call ran too long
            interrupt()
        else:
            return


class _ForkedKernel:
    """What nbclient needs of a kernel manager, for a kernel forked by this process (pid 1 of the
    student's namespaces, which also reaps every orphan the student's code leaves)."""

    def __init__(self, connection_file: str, pid: int) -> None:
        import threading

        from jupyter_client.manager import AsyncKernelManager

        class ForkedKernelManager(AsyncKernelManager):
            @property
            def has_kernel(self) -> bool:
                return True

            # (jupyter_client's clients call the _async_ names directly.)
            async def _async_is_alive(self) -> bool:
                return outer.exit_status is None

            async def _async_interrupt_kernel(self) -> None:
                outer.signal(2)

            async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
                outer.signal(9)

            is_alive, interrupt_kernel = _async_is_alive, _async_interrupt_kernel
            shutdown_kernel = _async_shutdown_kernel

        outer = self
        self.pid, self.exit_status = pid, None
        self.manager = ForkedKernelManager(connection_file=connection_file)
        self.manager.load_connection_file()
        threading.Thread(target=self._reap, daemon=True).start()

    def signal(self, number: int) -> None:
        if self.exit_status is None:
            try:
                os.kill(self.pid, number)
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        import time

        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            except InterruptedError:
                continue
            if pid == self.pid:
                self.exit_status = status


def serve_forked(settings: dict, result_fd: int, connection_file: str, kernel_pid: int, on_notebook) -> None:
    """The executor in a sandbox forked by the zygote (`zygote.py`): its kernel is already starting."""
    pipe = ResultPipe(result_fd)
    kernel = _ForkedKernel(connection_file, kernel_pid)
    executor = _make_executor(settings, kernel.manager)
    pipe.send("ready", failed_imports=[])
    try:
        _serve(executor, settings["cwd"], pipe, on_notebook, interrupt=lambda: kernel.signal(2))
    finally:
        kernel.signal(9)


def _drop_privileges(uid: int | None) -> None:
    """Become the sandbox's unprivileged uid (its RLIMIT_NPROC is then enforced); no way back."""
    if uid is None:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def main() -> int:
    # jsonschema (under nbformat) imports rfc3987_syntax when installed, which compiles a grammar
    # at import: ~1.4 s of CPU per submission, for URI formats notebooks never use.
    sys.modules.setdefault("rfc3987_syntax", None)
    settings = json.loads(sys.argv[1])
    _drop_privileges(settings.get("uid"))
    _protect_from_kernel(settings["result_fd"])
    pipe = ResultPipe(settings["result_fd"])
    executor = _make_executor(settings)
    failed = _warm_up(executor, settings.get("warm_modules", []))
    pipe.send("ready", failed_imports=failed)
    try:
        _serve(executor, settings["cwd"], pipe)
    finally:
        executor.km.shutdown_kernel(now=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
