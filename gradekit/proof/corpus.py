"""`corpus`: test the hidden tests with corpora of correct (wheat) and wrong (chaff) answers.

For every file `tests/corpus/<lab>/<answer grade_id>/{wheat,chaff}_*.py` the harness builds a
submission: the instructor notebook `source/<lab>/*.ipynb` with exactly that answer cell's
source replaced by the file (every other answer stays the instructor's solution), grades it,
and checks that
- a wheat gets full marks on every test cell;
- a chaff loses points on `test_<grade_id>` (or any test cell whose id starts with it), with
  a failure message (ename: evalue) that names the function and is not a bare AssertionError
  and quotes no hidden test line;
- every answer cell has at least 3 wheats and 5 chaffs.

Two ways to grade, because plain nbgrader is too slow for hundreds of entries:

fast mode (every entry)
    The student's side runs in the kernel runtime (`course_runtime`: Colab's Python and libraries, what the
    students have); the judge (`gradekit.judge.judge`, the code that grades for real) runs in the grader's
    environment, one worker process each. Each worker starts a small fork server in the runtime
    (`gradekit/untrusted/corpus_student.py`) that imports torch, scikit-learn, matplotlib (Agg), seaborn and
    pandas once, pins torch to one thread, then forks one child per entry. The child is the student's process:
    it executes the notebook's code cells in order with `exec` (test cells without their hidden tests, which
    never leave the worker), with NBGRADER_EXECUTION=autograde and warnings ignored like the real grader, and
    answers the judge's requests through the same bridge as the grader's kernels
    (`gradekit/untrusted/bridge.py`); values cross as data, so the two sides need not share a Python or torch
    version. After each of the lab's cells the judge runs the cell's trusted source, test cells whole, calling
    the student's functions in the child; a test cell's points are its verdict. A child that outlives the
    per-entry timeout is killed; a server that dies is started again. Two workers share the entries.
    Notebooks with IPython magics (`%`/`!` lines) go through a Jupyter kernel of the runtime instead
    (nbclient, in-kernel scoring: no corpus entry uses magics today).
fidelity sample (per lab: first wheat, first chaff, every entry marked `[full]`)
    Submitted to a scratch nbgrader course and graded with `gradekit grade` (sandbox, judge,
    nbgrader's scoring), twice. Points per test cell must equal fast mode's in both runs; the
    chaff's error output in the autograded notebook is checked like fast mode's.

Measured on this machine (2 cores shared with other jobs, so CPU seconds are the meaningful
numbers): fast mode costs 0.7 s CPU per lab1 entry, 0.65 s per lab3 entry and 0.45 s per lab2
entry, the student's child (~0.3 s) and the judge together, plus ~2.5 s wall per worker for the
server's imports. One plain `nbgrader autograde` of a lab1 entry costs 7.6 s CPU (26 s wall under
load): kernel start, fresh torch/sklearn import and gradebook writes for every notebook, 10x fast
mode. Grading all the entries that way would take ~30 minutes of CPU; fast mode gives the same
points (the fidelity sample checks it on every run) at a fraction of the cost.
(`python -m gradekit corpus` prints the numbers measured on the current corpora.)
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import (
    NBGRADER_DEFAULTS,
    Delimiters,
    defined_names,
    grade_id_of,
    is_answer_cell,
    is_locked_cell,
    is_test_cell,
    nbgrader_meta,
    points,
    student_code,
)
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.status import Status
from gradekit.grading.run import grade_lab
from gradekit.judge.judge import ChannelClosed, Judge
from gradekit.sandbox.bwrap import UNTRUSTED_DIR  # the only gradekit code on the student's path
from gradekit.sandbox.runtime import KernelRuntime, course_runtime, write_kernelspec
from gradekit.sandbox.settings import Limits

CORPUS_ROOT = REPO_ROOT / "tests" / "corpus"
MIN_WHEATS = 3
MIN_CHAFFS = 5
DEFAULT_TIMEOUT = 60.0  # seconds per entry in fast mode (nbgrader allows 60 s per cell)
GRADER_ENV = {"NBGRADER_EXECUTION": "autograde", "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}


# ---------------------------------------------------------------------------------------------
# The lab notebook and its corpus
# ---------------------------------------------------------------------------------------------

@dataclass
class Cell:
    """One code cell as the grader sees it."""

    source: str
    grade_id: str = ""
    points: float = 0.0
    is_test: bool = False
    is_answer: bool = False
    is_locked: bool = False  # a read-only cell of the lab: the judge runs it from the instructor's source
    kernel_source: str = ""  # a test cell as the student's process runs it: without its hidden tests


@dataclass
class Entry:
    """One corpus file: a complete replacement of one answer cell."""

    lab: str
    grade_id: str
    path: Path
    kind: str  # "wheat" or "chaff"
    description: str
    full: bool  # marked `[full]`: also graded through gradekit grade

    @property
    def key(self) -> str:
        return f"{self.lab}/{self.grade_id}/{self.path.name}"

    @property
    def source(self) -> str:
        return self.path.read_text()


@dataclass
class Lab:
    name: str
    notebook_path: Path
    corpus_dir: Path

    def notebook(self) -> NotebookNode:
        return nbformat.read(str(self.notebook_path), as_version=4)

    @property
    def delimiters(self) -> Delimiters:
        """The lab's course's nbgrader delimiters (source/<lab>/<notebook> is in the course root)."""
        return Delimiters.of(Course(self.notebook_path.parent.parent.parent))


def find_lab(name: str, source_root: Path | None = None, corpus_root: Path | None = None) -> Lab:
    source_root = source_root or REPO_ROOT / "source"
    (notebook,) = sorted((source_root / name).glob("*.ipynb"))
    return Lab(name, notebook, (corpus_root or CORPUS_ROOT) / name)


def code_cells(nb: NotebookNode, delimiters: Delimiters = NBGRADER_DEFAULTS) -> list[Cell]:
    return [Cell(source=cell.source, grade_id=grade_id_of(cell), points=points(cell), is_test=is_test_cell(cell),
                 is_answer=is_answer_cell(cell), is_locked=is_locked_cell(cell),
                 kernel_source=delimiters.strip_hidden(cell.source) if delimiters.has_hidden(cell.source) else "")
            for cell in nb.cells if cell.cell_type == "code"]


def student_visible_text(nb: NotebookNode, delimiters: Delimiters = NBGRADER_DEFAULTS) -> str:
    """Everything the release shows: markdown, given code, stubs' signatures, visible checks."""
    parts = []
    for cell in nb.cells:
        source = cell.source
        if cell.cell_type == "code":
            source = delimiters.strip_solution(delimiters.strip_hidden(source))
        parts.append(source)
    return "\n".join(parts)


def hidden_test_lines(source: str, visible: str = "", delimiters: Delimiters = NBGRADER_DEFAULTS) -> list[str]:
    """Hidden-test lines specific enough to recognise in a message (and not shown to students anyway)."""
    lines = (line.strip() for line in delimiters.hidden_lines(source))
    return [line for line in lines if len(line) >= 8 and not line.startswith("#") and line not in visible]


def describe(path: Path) -> tuple[str, bool]:
    """The entry's one-line docstring (empty if it has none) and whether it is marked [full]."""
    try:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    except SyntaxError:  # a chaff may be a syntax error on purpose: read the first line raw
        docstring = path.read_text().splitlines()[0].strip().strip('"').strip("'") if path.read_text() else ""
    first_line = docstring.strip().splitlines()[0] if docstring.strip() else ""
    return first_line, "[full]" in docstring


def discover_entries(lab: Lab) -> list[Entry]:
    entries = []
    if not lab.corpus_dir.is_dir():
        return entries
    for folder in sorted(p for p in lab.corpus_dir.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.py")):
            kind = path.name.split("_", 1)[0]
            if kind not in ("wheat", "chaff"):
                continue
            description, full = describe(path)
            entries.append(Entry(lab.name, folder.name, path, kind, description, full))
    return entries


def uses_magics(source: str) -> bool:
    return any(line.lstrip().startswith(("%", "!")) for line in source.splitlines())


def replace_answer(nb: NotebookNode, grade_id: str, source: str) -> NotebookNode:
    """A copy of the notebook with the answer cell `grade_id` replaced and all outputs cleared."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    found = False
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if meta.get("solution") and meta.get("grade_id") == grade_id and cell.cell_type == "code":
            cell.source, found = source, True
    if not found:
        raise KeyError(f"no answer cell with grade_id {grade_id!r}")
    return nb


# ---------------------------------------------------------------------------------------------
# Fast mode: fork one child per entry from a worker that imported the heavy modules once
# ---------------------------------------------------------------------------------------------

@dataclass
class CellResult:
    grade_id: str
    points: float
    max_points: float
    ename: str = ""
    evalue: str = ""
    stderr: str = ""
    # What the student sees: the error its visible checks raised in the student's process ("" none), or
    # None where that is not measured (a notebook with magics, run whole in a kernel).
    visible_error: str | None = None


def score_cell(max_points: float, error: tuple[str, str] | None, stderr: str,
               result_text: str | None) -> float:
    """Points for a test cell, following nbgrader.utils.determine_grade / get_partial_grade."""
    if error is not None or stderr:
        return 0.0
    if result_text is not None:
        try:
            grade = float(result_text)
        except ValueError:
            return max_points
        if grade > max_points:
            raise ValueError("partial credit cannot be greater than maximum points for cell")
        return grade if grade >= 0 else max_points
    return max_points


def _import_heavy_modules() -> None:
    """The judge's side of a worker: torch on one thread (two workers share the machine's cores).

    The student's side imports the labs' modules in its own server (`gradekit/untrusted/corpus_student.py`);
    the judge imports what the lab's locked cells import when it runs them."""
    import torch

    torch.set_num_threads(1)


def judged_program(cells: list[dict]) -> dict[str, str]:
    """grade_id -> source of the cells the judge runs: test cells and the lab's locked cells."""
    return {c["grade_id"]: c["source"] for c in cells
            if c["grade_id"] and (c["is_test"] or c.get("is_locked")) and not c["is_answer"]}


SERVER_START_TIMEOUT = 300.0  # seconds for the server's imports (Colab's CUDA torch, cold caches, a loaded machine)
EXIT_GRACE = 30.0  # seconds for an ended or killed child to be reaped and reported by the server


class _Lines:
    """JSON lines from the server's reply pipe, read with os.read under a deadline (a buffered reader would
    hide lines from select)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.pending = fd, b""

    def next(self, deadline: float) -> dict | None:
        """The next non-empty line's JSON object; None for a line that is not one (a reply cut short by a kill)."""
        import select

        while True:
            parts = [self.pending]
            while b"\n" not in parts[-1]:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
                    self.pending = b"".join(parts)
                    raise ChannelClosed("timed out", "timeout: still running")
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    self.pending = b""
                    raise ChannelClosed("crashed", "the student's server died")
                parts.append(chunk)
            line, _, self.pending = b"".join(parts).partition(b"\n")
            if not line.strip():  # the newline the server writes before an exit line
                continue
            try:
                message = json.loads(line)
            except ValueError:
                return None
            return message if isinstance(message, dict) else None


class StudentServer:
    """The worker's end of the student's side: `gradekit/untrusted/corpus_student.py` in the kernel runtime.

    One server per worker, started on first use; a fresh child of it per entry (`begin`, `exchange`, `finish`).
    A server that dies (a student's process can kill its parent) is stopped and started again for the next
    entry."""

    def __init__(self, runtime: KernelRuntime) -> None:
        self.runtime = runtime
        self.process: subprocess.Popen | None = None
        self.child: int | None = None  # the current entry's child, from its ready line
        self.exit: dict | None = None  # the server's exit line for it

    def start(self) -> None:
        commands_read, commands_write = os.pipe()
        replies_read, replies_write = os.pipe()
        env = {**os.environ, **GRADER_ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "PYTHONPATH": str(UNTRUSTED_DIR)}
        try:
            self.process = subprocess.Popen(
                [self.runtime.python, str(UNTRUSTED_DIR / "corpus_student.py"), str(commands_read),
                 str(replies_write)], pass_fds=(commands_read, replies_write), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)
        except BaseException:
            os.close(commands_write), os.close(replies_read)
            raise
        finally:  # the server's ends: a pipe it alone holds reads as closed when it dies
            os.close(commands_read), os.close(replies_write)
        self.commands_fd, self.lines = commands_write, _Lines(replies_read)
        # Non-blocking writes: a child that dies half-way through a long command leaves the pipe full, and
        # the server's exit line must still be read.
        os.set_blocking(commands_write, False)
        try:
            ready = self.lines.next(time.monotonic() + SERVER_START_TIMEOUT)
        except ChannelClosed as closed:
            self.stop()
            raise RuntimeError(f"the student's server ({self.runtime.label}) did not start: {closed.reason}") from None
        if not ready or "server" not in ready:
            self.stop()
            raise RuntimeError(f"the student's server ({self.runtime.label}) said {ready!r}")

    def ensure_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.stop()  # died between entries: close its pipes
        self.start()

    def stop(self) -> None:
        import signal

        if self.process is None:
            return
        for pid in ([self.child] if self.child is not None and self.exit is None else []) + [self.process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in (self.commands_fd, self.lines.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.process.wait()
        self.process = None

    def _write(self, message: dict, deadline: float, newline_first: bool = False) -> None:
        import select

        view = memoryview((b"\n" if newline_first else b"") + json.dumps(message).encode() + b"\n")
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChannelClosed("timed out", "timeout: still running")
            readable, writable, _ = select.select([self.lines.fd], [self.commands_fd], [], remaining)
            if readable:  # the server's exit line (the child died), or its end: the next read says which
                return
            if writable:
                try:
                    view = view[os.write(self.commands_fd, view):]
                except BlockingIOError:
                    continue
                except OSError as error:
                    raise ChannelClosed("crashed", "the student's server died") from error

    def _reply(self, deadline: float) -> dict:
        message = self.lines.next(deadline)
        if message is None:
            raise ChannelClosed("crashed", "the student's process sent an unreadable reply")
        if "exited" in message:
            self.exit = message
            raise ChannelClosed("crashed", "the student's process died")
        return message

    def _read_to_exit(self, deadline: float) -> None:
        """Skip what the child wrote (replies a killed child left, whole or cut short) up to the exit line."""
        try:
            while self.exit is None:
                message = self.lines.next(deadline)
                if message is not None and "exited" in message:
                    self.exit = message
        except ChannelClosed:
            pass

    def begin(self, sources: list[str], cwd: str, deadline: float) -> None:
        """Fork the entry's child: it runs `sources` (the code cells as the kernel gets them) in `cwd`."""
        self.child, self.exit = None, None
        # A newline first: a command a killed child left half read ends there, and the server skips it.
        self._write({"op": "entry", "cells": sources, "cwd": cwd}, deadline, newline_first=True)
        ready = self._reply(deadline)
        if not isinstance(ready.get("ready"), int):
            raise ChannelClosed("crashed", "the student's process did not start")
        self.child = ready["ready"]

    def exchange(self, command: dict, deadline: float) -> dict:
        self._write(command, deadline)
        return self._reply(deadline)

    def finish(self, kill: bool) -> float | None:
        """End the entry's child (ask it, or kill it by pid) and read up to the server's exit line: the child's
        CPU seconds; None if the server is gone or stuck (then it is stopped, and started for the next entry)."""
        import signal

        if self.exit is None and self.child is not None and not kill:
            try:
                self._write({"op": "end"}, time.monotonic() + EXIT_GRACE)
            except ChannelClosed:
                pass
            self._read_to_exit(time.monotonic() + EXIT_GRACE)
        if self.exit is None and self.child is not None:
            try:
                os.kill(self.child, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._read_to_exit(time.monotonic() + EXIT_GRACE)
        if self.exit is None:
            self.stop()
            return None
        return float(self.exit.get("cpu", 0.0))


_default_server: StudentServer | None = None


def _server_of_this_process() -> StudentServer:
    """One server for the `fork_and_grade` calls made without one (tests, lecture_paste), stopped at exit."""
    global _default_server
    if _default_server is None:
        import atexit

        _default_server = StudentServer(course_runtime(REPO_ROOT))
        atexit.register(_default_server.stop)
    return _default_server


def fork_and_grade(cells: list[dict], timeout: float, server: StudentServer | None = None) -> dict:
    """Grade one submission: a child of the student's server is the student's process, this process is the judge.

    The child starts from the server's imported modules (copy-on-write) in the kernel runtime; it runs every
    code cell in order with the hidden tests removed and answers the judge's requests
    (`gradekit.untrusted.bridge`). After each of the lab's cells the judge (`gradekit.judge.judge`) runs that
    cell's trusted source here, calling the student's functions in the child; a test cell's points are the
    judge's verdict, exactly as in `gradekit grade`."""

    server = server or _server_of_this_process()
    server.ensure_running()
    program = judged_program(cells)
    # What the kernel gets: hidden tests removed (with the lab's delimiters, `code_cells`; a cell built by
    # hand without a kernel_source with nbgrader's defaults). The hidden tests never reach the student's side.
    sources = [c.get("kernel_source") or NBGRADER_DEFAULTS.strip_hidden(c["source"]) for c in cells]
    scratch = tempfile.mkdtemp(prefix="corpus-entry-")
    started, judge_cpu = time.perf_counter(), time.process_time()
    deadline = time.monotonic() + timeout

    def send(message: dict) -> dict:
        reply = server.exchange({"op": "bridge", "request": json.dumps(message)}, deadline)
        try:
            answer = json.loads(reply["reply"])
        except (KeyError, TypeError, ValueError, RecursionError):
            answer = None
        return answer if isinstance(answer, dict) else {
            "error": {"type": "BridgeError", "message": "the kernel's answer could not be read"}}

    # Student code that only the runtime's Python can parse (3.12+ syntax) is parsed there for the "by hand" checks.
    judge = Judge(send, program, student_code(
        {"cell_type": "code", "source": c["source"],
         "metadata": {"nbgrader": {"grade": c["is_test"], "locked": c.get("is_locked", False)}}} for c in cells),
        runtime_python=server.runtime.python)
    results, slowest, crash = [], (0.0, -1), None
    try:
        server.begin(sources, scratch, deadline)
        for index, cell in enumerate(cells):
            reply = server.exchange({"op": "cell", "index": index}, deadline)
            slowest = max(slowest, (float(reply.get("seconds", 0.0)), index))
            if cell["grade_id"] in program:
                verdict = judge.run(cell["grade_id"], cell["is_test"])
                if cell["is_test"]:
                    seen = reply.get("error")
                    results.append(asdict(CellResult(
                        cell["grade_id"], cell["points"] if verdict.passed else 0.0, cell["points"],
                        "" if verdict.passed else verdict.ename, verdict.message, reply.get("stderr", ""),
                        str(seen[0]) if isinstance(seen, list) and seen else "")))
    except ChannelClosed as closed:
        crash = f"timeout: still running after {timeout:g} s" if closed.status == "timed out" else closed.reason
    finally:
        child_cpu = server.finish(kill=crash is not None)
        shutil.rmtree(scratch, ignore_errors=True)
    if child_cpu is None:
        crash, child_cpu = crash or "the student's server died", 0.0
    # CPU time of the child and the judge: wall time says little on a machine shared with other jobs.
    times = {"seconds": time.perf_counter() - started, "cpu": child_cpu + time.process_time() - judge_cpu}
    if crash:
        return {"crash": crash, **times}
    return {"cells": results, "slowest_cell": slowest, **times}


def kernel_grade(cells: list[dict], timeout: float, runtime: KernelRuntime | None = None) -> dict:
    """Fallback for notebooks with IPython magics: run them in a real kernel of the runtime, score like nbgrader."""
    from nbclient import NotebookClient
    from nbgrader.utils import determine_grade

    runtime = runtime or course_runtime(REPO_ROOT)
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        node = nbformat.v4.new_code_cell(cell["source"])
        if cell["is_test"]:
            node.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": cell["grade_id"],
                                         "points": cell["points"], "locked": True, "schema_version": 3}
        nb.cells.append(node)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory() as jupyter_data:
        kernel_name = write_kernelspec(runtime, Path(jupyter_data))  # found through JUPYTER_PATH
        environment = {**GRADER_ENV, "JUPYTER_PATH": jupyter_data}
        saved = {k: os.environ.get(k) for k in environment}
        os.environ.update(environment)
        try:
            NotebookClient(nb, timeout=int(timeout), allow_errors=True, kernel_name=kernel_name,
                           resources={"metadata": {"path": scratch}}).execute()
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    results = []
    for node in nb.cells:
        meta = node.metadata.get("nbgrader")
        if not meta:
            continue
        errors = [o for o in node.outputs if o.output_type == "error"]
        stderr = "".join(o.text for o in node.outputs if o.output_type == "stream" and o.name == "stderr")
        results.append(asdict(CellResult(meta["grade_id"], float(determine_grade(node)[0]), meta["points"],
                                         errors[0].ename if errors else "",
                                         errors[0].evalue if errors else "", stderr)))
    seconds = time.perf_counter() - started
    return {"cells": results, "seconds": seconds, "cpu": seconds}


def worker_main(jobs_path: str, results_path: str) -> None:
    """A worker process: the judge, with one student's server in the kernel runtime; one JSON line per result."""
    jobs = json.loads(Path(jobs_path).read_text())
    runtime = KernelRuntime.from_dict(jobs["runtime"])
    _import_heavy_modules()
    server = StudentServer(runtime)
    try:
        with open(results_path, "w") as out:
            for job in jobs["entries"]:
                cells = [dict(c) for c in jobs["labs"][job["lab"]]]
                cells[job["answer_index"]]["source"] = job["source"]
                if job["kernel"]:
                    result = kernel_grade(cells, job["timeout"], runtime)
                else:
                    result = fork_and_grade(cells, job["timeout"], server)
                out.write(json.dumps({"key": job["key"], **result}) + "\n")
                out.flush()
    finally:
        server.stop()


def answer_index(cells: list[Cell], grade_id: str) -> int | None:
    for index, cell in enumerate(cells):
        if cell.is_answer and cell.grade_id == grade_id:
            return index
    return None


def baseline_key(lab: str) -> str:
    return f"{lab}/(instructor solution)"


def run_fast(labs: list[Lab], entries: list[Entry], workers: int = 2, timeout: float = DEFAULT_TIMEOUT,
             runtime: KernelRuntime | None = None) -> dict[str, dict]:
    """Grade every entry in fast mode on `workers` processes; results keyed by Entry.key.

    The student's side runs in `runtime` (default: the kit's course runtime, what the students have)."""
    runtime = runtime or course_runtime(REPO_ROOT)
    lab_cells = {lab.name: [asdict(c) for c in code_cells(lab.notebook(), lab.delimiters)] for lab in labs}
    magic_labs = {name for name, cells in lab_cells.items() if any(uses_magics(c["source"]) for c in cells)}
    jobs, results = [], {}
    for lab in labs:  # the instructor notebook itself, as a baseline every verdict relies on
        cells = [Cell(**c) for c in lab_cells[lab.name]]
        first_answer = next((i for i, c in enumerate(cells) if c.is_answer), 0)
        jobs.append({"key": baseline_key(lab.name), "lab": lab.name, "answer_index": first_answer,
                     "source": cells[first_answer].source, "timeout": timeout,
                     "kernel": lab.name in magic_labs})
    for entry in entries:
        cells = [Cell(**c) for c in lab_cells[entry.lab]]
        index = answer_index(cells, entry.grade_id)
        if index is None:
            results[entry.key] = {"crash": f"no answer cell {entry.grade_id!r} in the notebook", "seconds": 0.0}
            continue
        source = entry.source
        jobs.append({"key": entry.key, "lab": entry.lab, "answer_index": index, "source": source,
                     "timeout": timeout, "kernel": entry.lab in magic_labs or uses_magics(source)})
    if not jobs:
        return results
    workers = max(1, min(workers, len(jobs)))
    with tempfile.TemporaryDirectory(prefix="corpus-") as scratch:
        processes = []
        for index in range(workers):
            jobs_path = Path(scratch, f"jobs{index}.json")
            results_path = Path(scratch, f"results{index}.jsonl")
            jobs_path.write_text(json.dumps({"labs": lab_cells, "entries": jobs[index::workers],
                                             "runtime": runtime.to_dict()}))
            command = [sys.executable, "-c",
                       "import sys; from gradekit.proof.corpus import worker_main; worker_main(*sys.argv[1:])",
                       str(jobs_path), str(results_path)]
            env = {**os.environ, **GRADER_ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            processes.append((subprocess.Popen(command, env=env, cwd=scratch, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.PIPE, text=True), results_path))
        for process, results_path in processes:
            _, worker_stderr = process.communicate()
            if results_path.exists():
                for line in results_path.read_text().splitlines():
                    result = json.loads(line)
                    results[result.pop("key")] = result
            if process.returncode != 0:
                print(f"corpus worker exited with {process.returncode}:\n{worker_stderr[-3000:]}",
                      file=sys.stderr)
    for job in jobs:
        results.setdefault(job["key"], {"crash": "worker died before grading this entry", "seconds": 0.0})
    return results


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------

@dataclass
class EntryReport:
    entry: Entry
    cells: list[CellResult]
    seconds: float
    verdict: str = ""
    problems: list[str] = field(default_factory=list)
    cpu: float = 0.0  # CPU seconds of the entry's student process and of the judge

    @property
    def ok(self) -> bool:
        return self.verdict in ("wheat ok", "chaff killed")

    def seen_by_the_student(self) -> bool | None:
        """Chaff: whether a visible check of its own test cell fails in the student's notebook. Wheat: whether
        every visible check passes. None where it was not measured."""
        cells = self.cells if self.entry.kind == "wheat" else \
            [c for c in self.cells if c.grade_id.startswith(f"test_{self.entry.grade_id}")]
        if not cells or any(c.visible_error is None for c in cells):
            return None
        failed = any(c.visible_error for c in cells)
        return not failed if self.entry.kind == "wheat" else failed


@dataclass
class LabReport:
    lab: str
    test_cells: list[tuple[str, float]]
    entries: list[EntryReport]
    coverage_errors: list[str]
    fidelity: list[str] = field(default_factory=list)  # problems found by the fidelity sample
    fidelity_notes: list[str] = field(default_factory=list)

    def count(self, kind: str) -> tuple[int, int]:
        reports = [r for r in self.entries if r.entry.kind == kind]
        return sum(r.ok for r in reports), len(reports)

    def visible(self, kind: str) -> tuple[int, int]:
        """Chaffs a visible check catches, or wheats every visible check passes: (count, measured)."""
        seen = [r.seen_by_the_student() for r in self.entries if r.entry.kind == kind]
        return sum(1 for s in seen if s), sum(1 for s in seen if s is not None)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.entries) and not self.coverage_errors and not self.fidelity


def message_problems(cell: CellResult, names: set[str], hidden_lines: list[str]) -> list[str]:
    """What is wrong with the failure message a chaff gets on its test cell."""
    if not cell.ename:
        return [f"{cell.grade_id}: lost points through stderr only, no error message "
                f"(stderr: {cell.stderr.strip()[:200]!r})"]
    problems = []
    message = f"{cell.ename}: {cell.evalue}"
    if cell.ename == "AssertionError" and not cell.evalue.strip():
        problems.append(f"{cell.grade_id}: bare AssertionError with an empty message")
    if not any(name in message for name in names):
        problems.append(f"{cell.grade_id}: message does not name {sorted(names)}: {message[:300]!r}")
    leaked = [line for line in hidden_lines if line in message]
    if leaked:
        problems.append(f"{cell.grade_id}: message quotes hidden test code {leaked[0]!r}")
    return problems


def judge(entry: Entry, cells: list[CellResult], answer_source: str,
          hidden_lines: dict[str, list[str]]) -> tuple[str, list[str]]:
    """The verdict for one graded entry and the details behind it."""
    problems = [] if entry.description else ["no one-line docstring on the first line"]
    if entry.kind == "wheat":
        lost = [c for c in cells if c.points < c.max_points]
        problems += [f"{c.grade_id}: {c.points:g}/{c.max_points:g} — "
                     f"{(c.ename + ': ' + c.evalue) if c.ename else 'stderr: ' + c.stderr.strip()}"[:400]
                     for c in lost]
        return ("WHEAT FAILED" if lost else "wheat ok"), problems
    target = f"test_{entry.grade_id}"
    targets = [c for c in cells if c.grade_id.startswith(target)]
    if not targets:
        return "SURVIVED", problems + [f"the notebook has no test cell {target}"]
    killed_on = [c for c in targets if c.points < c.max_points]
    if not killed_on:
        return "SURVIVED", problems + [f"full marks on {', '.join(c.grade_id for c in targets)}"]
    names = {entry.grade_id} | defined_names(answer_source, methods=True)
    problems += message_problems(killed_on[0], names, hidden_lines.get(killed_on[0].grade_id, []))
    return ("BAD MESSAGE" if problems else "chaff killed"), problems


def coverage_errors(cells: list[Cell], entries: list[Entry]) -> list[str]:
    errors = []
    answers = [c.grade_id for c in cells if c.is_answer]
    test_ids = [c.grade_id for c in cells if c.is_test]
    for grade_id in answers:
        wheats = sum(e.grade_id == grade_id and e.kind == "wheat" for e in entries)
        chaffs = sum(e.grade_id == grade_id and e.kind == "chaff" for e in entries)
        if wheats < MIN_WHEATS or chaffs < MIN_CHAFFS:
            errors.append(f"{grade_id}: {wheats} wheats and {chaffs} chaffs "
                          f"(at least {MIN_WHEATS} and {MIN_CHAFFS} required)")
        if not any(t.startswith(f"test_{grade_id}") for t in test_ids):
            errors.append(f"{grade_id}: no test cell test_{grade_id}")
    for grade_id in sorted({e.grade_id for e in entries} - set(answers)):
        errors.append(f"corpus folder {grade_id}/ matches no answer cell")
    return errors


def baseline_errors(result: dict) -> list[str]:
    """The instructor notebook must get full marks in fast mode, or no verdict means anything."""
    if "crash" in result:
        return [f"instructor notebook not graded: {result['crash']}"]
    return [f"instructor solution loses points on {c['grade_id']}: "
            f"{c['ename'] + ': ' + c['evalue'] if c['ename'] else 'stderr: ' + c['stderr']}"[:400]
            for c in result["cells"] if c["points"] < c["max_points"]]


def grade_labs(labs: list[Lab], workers: int = 2, timeout: float = DEFAULT_TIMEOUT,
               runtime: KernelRuntime | None = None) -> list[LabReport]:
    """Fast-mode grading and verdicts for every entry of every lab (student code in `runtime`, by default the
    kit's course runtime)."""
    entries_by_lab = {lab.name: discover_entries(lab) for lab in labs}
    raw = run_fast(labs, [e for entries in entries_by_lab.values() for e in entries], workers, timeout, runtime)
    reports = []
    for lab in labs:
        nb = lab.notebook()
        cells, visible = code_cells(nb, lab.delimiters), student_visible_text(nb, lab.delimiters)
        answers = {c.grade_id: c.source for c in cells if c.is_answer}
        hidden = {c.grade_id: hidden_test_lines(c.source, visible, lab.delimiters) for c in cells if c.is_test}
        entry_reports = []
        for entry in entries_by_lab[lab.name]:
            result = raw[entry.key]
            graded = [CellResult(**c) for c in result.get("cells", [])]
            if "crash" in result:
                verdict = "WHEAT FAILED" if entry.kind == "wheat" else "SURVIVED"
                entry_reports.append(EntryReport(entry, graded, result["seconds"], verdict,
                                                 [f"not graded: {result['crash']}"], result["cpu"]))
                continue
            verdict, problems = judge(entry, graded, answers.get(entry.grade_id, ""), hidden)
            entry_reports.append(EntryReport(entry, graded, result["seconds"], verdict, problems, result["cpu"]))
        reports.append(LabReport(lab.name, [(c.grade_id, c.points) for c in cells if c.is_test],
                                 entry_reports, baseline_errors(raw[baseline_key(lab.name)])
                                 + coverage_errors(cells, entries_by_lab[lab.name])))
    return reports


# ---------------------------------------------------------------------------------------------
# Fidelity sample: the same entries through `gradekit grade`
# ---------------------------------------------------------------------------------------------

def fidelity_sample(report: LabReport) -> list[EntryReport]:
    """First wheat, first chaff and every entry marked [full], in corpus order."""
    chosen = []
    for kind in ("wheat", "chaff"):
        chosen += [r for r in report.entries if r.entry.kind == kind][:1]
    chosen += [r for r in report.entries if r.entry.full and r not in chosen]
    return chosen


def scratch_course(root: Path, lab: Lab) -> Course:
    """A released one-lab course in `root` (like tests/conftest.build_course, for any source dir)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(lab.notebook_path.parent, root / "source" / lab.name)
    course = Course(root)
    course.nbgrader("generate_assignment", lab.name, "--force")
    return course


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _grade(course: Course, lab: str) -> tuple[float, float]:
    """Grade the scratch course with `gradekit grade` (sandbox and judge); (wall, CPU) seconds."""

    started, cpu = time.perf_counter(), _children_cpu()
    run = grade_lab(course, lab, workers=2, limits=Limits(timeout=300), progress=io.StringIO())
    failed = [f"{s.student}: {s.status} {s.reason}" for s in run.students if s.status != Status.GRADED]
    if failed:
        raise RuntimeError(f"gradekit grade {lab} failed: {failed}")
    return time.perf_counter() - started, _children_cpu() - cpu


def _gradebook_points(course: Course, lab: str, student: str, test_ids: list[str]) -> dict[str, float]:

    notebook = course.notebook_name(lab)
    with course.open_gradebook() as gradebook:
        return {t: float(gradebook.find_grade(t, notebook, lab, student).score) for t in test_ids}


def _autograded_errors(course: Course, lab: str, student: str) -> dict[str, CellResult]:
    path = course.autograded / student / lab / f"{course.notebook_name(lab)}.ipynb"
    results = {}
    for cell in nbformat.read(str(path), as_version=4).cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution"):
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        stderr = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")
        results[meta["grade_id"]] = CellResult(meta["grade_id"], -1.0, float(meta.get("points", 0)),
                                               errors[0].ename if errors else "",
                                               errors[0].evalue if errors else "", stderr)
    return results


def check_fidelity(course: Course, lab: Lab, report: LabReport) -> None:
    """Grade the sample with gradekit grade (twice) in `course`; record mismatches in `report`."""
    sample = fidelity_sample(report)
    if not sample:
        return
    nb = lab.notebook()
    cells, visible = code_cells(nb, lab.delimiters), student_visible_text(nb, lab.delimiters)
    answers = {c.grade_id: c.source for c in cells if c.is_answer}
    hidden = {c.grade_id: hidden_test_lines(c.source, visible, lab.delimiters) for c in cells if c.is_test}
    test_ids = [t for t, _ in report.test_cells]
    students = {}
    with tempfile.TemporaryDirectory() as scratch:
        for number, entry_report in enumerate(sample):
            entry = entry_report.entry
            student = f"corpus{number:02d}"
            students[student] = entry_report
            path = Path(scratch, f"{student}.ipynb")
            nbformat.write(replace_answer(nb, entry.grade_id, entry.source), str(path))
            target = course.submitted / student / lab.name / f"{course.notebook_name(lab.name)}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    first = _grade(course, lab.name)
    first_points = {s: _gradebook_points(course, lab.name, s, test_ids) for s in students}
    errors = {s: _autograded_errors(course, lab.name, s) for s in students}
    # Regrading one submission (a chaff when there is one) shows the tests' randomness is seeded.
    again = next((s for s, r in students.items() if r.entry.kind == "chaff"), next(iter(students)))
    second = _grade(course, lab.name)
    second_points = {again: _gradebook_points(course, lab.name, again, test_ids)}
    fast_seconds = sum(r.seconds for r in sample)
    fast_cpu = sum(r.cpu for r in sample)
    report.fidelity_notes.append(
        f"fidelity: {len(sample)} entries; per entry gradekit grade {first[1] / len(sample):.1f} s CPU, "
        f"{first[0] / len(sample):.1f} s wall (regrade: {second[1] / len(sample):.1f} s CPU) vs fast mode "
        f"{fast_cpu / len(sample):.2f} s CPU, {fast_seconds / len(sample):.2f} s wall")
    for student, entry_report in students.items():
        key = entry_report.entry.key
        fast_points = {c.grade_id: c.points for c in entry_report.cells}
        if first_points[student] != fast_points:
            report.fidelity.append(f"{key}: nbgrader points {first_points[student]} != fast mode {fast_points}")
        if student in second_points and second_points[student] != first_points[student]:
            report.fidelity.append(f"{key}: regrading changed points {first_points[student]} -> "
                                   f"{second_points[student]}")
        if entry_report.entry.kind == "chaff":
            lost = [g for g, p in first_points[student].items()
                    if g.startswith(f"test_{entry_report.entry.grade_id}") and p < dict(report.test_cells)[g]]
            answer = answers.get(entry_report.entry.grade_id, "")
            names = {entry_report.entry.grade_id} | defined_names(answer, methods=True)
            for grade_id in lost[:1]:
                for problem in message_problems(errors[student][grade_id], names, hidden.get(grade_id, [])):
                    report.fidelity.append(f"{key} (autograded notebook): {problem}")


def run_fidelity(labs: list[Lab], reports: list[LabReport]) -> None:
    for lab, report in zip(labs, reports, strict=True):
        with tempfile.TemporaryDirectory(prefix=f"corpus-{lab.name}-") as root:
            try:
                check_fidelity(scratch_course(Path(root, "course"), lab), lab, report)
            except (RuntimeError, subprocess.CalledProcessError) as error:
                report.fidelity.append(f"fidelity sample could not be graded: {error}"[:2000])


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def _ratio(ok: int, total: int) -> str:
    return f"{ok}/{total} ({100 * ok / total:.0f}%)" if total else "0/0"


def format_lab(report: LabReport) -> str:
    columns = [f"T{i + 1}" for i in range(len(report.test_cells))]
    lines = [f"== {report.lab} ==",
             "columns: " + "  ".join(f"{column}={grade_id} ({points:g} pt)" for column, (grade_id, points)
                                     in zip(columns, report.test_cells, strict=True))]
    header = f"{'function':<22} {'entry':<34} {'kind':<5} " + " ".join(f"{c:>4}" for c in columns)
    lines.append(header + f"  {'verdict':<13} {'cpu s':>5}  description")
    for r in report.entries:
        points = {c.grade_id: c.points for c in r.cells}
        shown = " ".join(f"{points[g]:>4g}" if g in points else f"{'-':>4}" for g, _ in report.test_cells)
        lines.append(f"{r.entry.grade_id[:22]:<22} {r.entry.path.stem[:34]:<34} {r.entry.kind:<5} {shown}"
                     f"  {r.verdict:<13} {r.cpu:5.2f}  {r.entry.description[:70]}")
        lines += [f"{'':>24}! {problem}" for problem in r.problems if not r.ok or r.entry.kind == "chaff"]
    lines += [f"COVERAGE: {e}" for e in report.coverage_errors]
    lines += report.fidelity_notes + [f"FIDELITY: {p}" for p in report.fidelity]
    lines.append(f"{report.lab}: chaffs killed {_ratio(*report.count('chaff'))}, "
                 f"wheats passing {_ratio(*report.count('wheat'))}")
    silent = [r for r in report.entries if r.entry.kind == "chaff" and r.seen_by_the_student() is False]
    lines += [f"  VISIBLY SILENT: {r.entry.grade_id}/{r.entry.path.stem}: no visible check of its test cell "
              "fails (only the hidden tests catch it)" for r in silent]
    lines += [f"  VISIBLY FAILING WHEAT: {r.entry.grade_id}/{r.entry.path.stem}" for r in report.entries
              if r.entry.kind == "wheat" and r.seen_by_the_student() is False]
    lines.append(f"{report.lab}, as the student sees it: visible checks catch {_ratio(*report.visible('chaff'))} "
                 f"of the chaffs, pass {_ratio(*report.visible('wheat'))} of the wheats")
    return "\n".join(lines)


def format_totals(reports: list[LabReport]) -> str:
    killed = [sum(x) for x in zip(*(r.count("chaff") for r in reports), strict=True)] or [0, 0]
    passing = [sum(x) for x in zip(*(r.count("wheat") for r in reports), strict=True)] or [0, 0]
    cpu = [e.cpu for r in reports for e in r.entries]
    wall = [e.seconds for r in reports for e in r.entries]
    mean_cpu, mean_wall = (sum(cpu) / len(cpu), sum(wall) / len(wall)) if cpu else (0.0, 0.0)
    caught = [sum(x) for x in zip(*(r.visible("chaff") for r in reports), strict=True)] or [0, 0]
    return (f"overall: chaffs killed {_ratio(*killed)}, wheats passing {_ratio(*passing)}, visible checks "
            f"catch {_ratio(*caught)} of the chaffs; "
            f"fast mode per entry {mean_cpu:.2f} s CPU, {mean_wall:.2f} s wall "
            f"({len(cpu)} entries, {sum(cpu):.0f} s CPU in all)")


def to_json(reports: list[LabReport]) -> dict:
    def entry_json(r: EntryReport) -> dict:
        return {"key": r.entry.key, "function": r.entry.grade_id, "entry": r.entry.path.stem,
                "kind": r.entry.kind, "description": r.entry.description, "verdict": r.verdict,
                "ok": r.ok, "seen_by_the_student": r.seen_by_the_student(), "seconds": round(r.seconds, 3),
                "cpu": round(r.cpu, 3), "problems": r.problems,
                "cells": [asdict(c) for c in r.cells]}

    return {"labs": [{"lab": r.lab, "ok": r.ok, "test_cells": r.test_cells,
                      "chaffs_killed": r.count("chaff"), "wheats_passing": r.count("wheat"),
                      "chaffs_caught_visibly": r.visible("chaff"), "wheats_passing_visibly": r.visible("wheat"),
                      "coverage_errors": r.coverage_errors, "fidelity_problems": r.fidelity,
                      "fidelity_notes": r.fidelity_notes, "entries": [entry_json(e) for e in r.entries]}
                     for r in reports],
            "ok": all(r.ok for r in reports)}


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


