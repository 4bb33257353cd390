"""The executor that runs one student notebook, started inside the sandbox by `gradekit.sandbox`.

Run as a script (`python execute.py '<json settings>'`), never imported by the sandboxed side:
the sandbox shows this one file, not the gradekit package. Protocol:

1. start the kernel (the execution logic of nbgrader's `Execute` preprocessor, configured like the course's
   `nbgrader autograde`) and import the lab's heavy modules in it ("warm" executor);
2. write `{"event": "ready"}` on the result pipe (an fd given in the settings), then reads the sanitized notebook
   from stdin until end of file;
3. execute it cell by cell, writing `{"event": "cell", "index", "outputs", "execution_count"}`
   after each code cell, then `{"event": "done"}` (or `{"event": "crashed", "reason"}`).

Cells arrive one by one so that a notebook killed half way (time limit, a student's
`os._exit`) still has the outputs of the cells it ran; the grader marks the others not run.
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


def _make_executor(settings: dict):
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
    executor.km = executor.create_kernel_manager()
    executor.start_new_kernel(cwd=settings["cwd"])
    executor.start_new_kernel_client()
    return executor


def _warm_up(executor, modules: list[str]) -> None:
    """Import the lab's modules in the kernel, silently: no history, no names, no outputs kept."""
    if not modules:
        return
    code = "\n".join(f"try:\n    __import__({name!r})\nexcept Exception:\n    pass" for name in modules)
    msg_id = executor.kc.execute(code, silent=True, store_history=False)
    executor.wait_for_reply(msg_id)


def _run(executor, nb, cwd: str, pipe: ResultPipe) -> None:
    from nbclient.exceptions import DeadKernelError

    executor.nb = nb
    executor.resources = {"metadata": {"path": cwd}}
    executor.reset_execution_trackers()
    info = executor.wait_for_reply(executor.kc.kernel_info())
    nb.metadata["language_info"] = info["content"]["language_info"]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            executor.execute_cell(cell, index, store_history=True)
        except DeadKernelError:
            pipe.send("crashed", reason=f"the kernel died in cell {index} (exit, segfault or memory limit)")
            return
        pipe.send("cell", index=index, outputs=cell.get("outputs", []),
                  execution_count=cell.get("execution_count"))
    pipe.send("done")


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
    import nbformat

    executor = _make_executor(settings)
    _warm_up(executor, settings.get("warm_modules", []))
    pipe.send("ready")
    nb = nbformat.reads(sys.stdin.read(), as_version=4)
    try:
        _run(executor, nb, settings["cwd"], pipe)
    finally:
        executor.km.shutdown_kernel(now=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
