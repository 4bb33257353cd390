"""One notebook under judgement: the kernel runs it cell by cell, the judge checks each test cell.

The kernel gets the notebook without its hidden tests (nbgrader's delimiters, `gradekit.course.cells`);
what it sends back is untrusted and rebuilt field by field (`clean_output`); each test cell's outputs
become what the judge decided (`judged_outputs`), so that nbgrader's scoring reads the judge's verdict.
The judge runs in a process lent for the notebook (`gradekit.judge.process`); this side carries its
requests to the kernel and the kernel's replies back as text, unparsed.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import NBGRADER_DEFAULTS, Delimiters, grade_id_of, is_test_cell, student_code
from gradekit.course.status import Status
from gradekit.judge.judge import ChannelClosed, Verdict
from gradekit.judge.process import JudgeFailed, JudgeProcess, lend
from gradekit.sandbox.executors import ExecutionResult, mark_not_run


def kernel_notebook(nb: NotebookNode, delimiters: Delimiters = NBGRADER_DEFAULTS) -> NotebookNode:
    """The notebook sent to the sandbox: every hidden-test region removed, no outputs."""
    copy = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in copy.cells:
        if delimiters.has_hidden(cell.get("source", "")):
            cell.source = delimiters.strip_hidden(cell.source)
    return copy


def judged_outputs(kernel_outputs: list, verdict: Verdict) -> list:
    """A test cell's outputs for nbgrader: what the kernel printed, then the judge's verdict.

    The kernel's errors and displayed values are dropped (only the judge decides: nbgrader reads an
    error as 0 points and a displayed number as partial credit); its stderr is kept as stdout (nbgrader
    reads stderr as 0 points, and a warning a library printed is not the student's mistake)."""
    outputs = []
    for output in kernel_outputs:
        kind = output.get("output_type")
        if kind == "stream":
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=output.get("text", "")))
        elif kind == "display_data":
            outputs.append(output)
    if not verdict.passed:
        outputs.append(nbformat.v4.new_output("error", ename=verdict.ename, evalue=verdict.message,
                                              traceback=[f"{verdict.ename}: {verdict.message}"]))
    return outputs


STREAM_NAMES = ("stdout", "stderr")


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


MAX_JSON_NODES = 10_000  # values in one JSON output kept in the notebook


def json_nodes(value: Any, limit: int) -> int:
    """How many values `value` holds, counting stops past `limit` (no recursion: depth costs nothing)."""
    count, stack = 0, [value]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(itertools.islice(item.values(), limit - count + 1))
        elif isinstance(item, list):
            stack.extend(item[:limit - count + 1])
    return count


def clean_output(output: Any) -> NotebookNode | None:
    """One output from the kernel, rebuilt field by field from what nbformat allows (or dropped)."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream":
        name = output.get("name") if output.get("name") in STREAM_NAMES else "stdout"
        return nbformat.v4.new_output("stream", name=name, text=_text(output.get("text")))
    if kind == "error":
        traceback = output.get("traceback")
        return nbformat.v4.new_output("error", ename=_text(output.get("ename"))[:200],
                                      evalue=_text(output.get("evalue"))[:5000],
                                      traceback=[_text(t) for t in traceback[:200]] if isinstance(traceback, list)
                                      else [])
    if kind in ("display_data", "execute_result"):
        data = output.get("data")
        if not isinstance(data, dict):
            return None
        clean = {}
        for mime, value in data.items():
            if not isinstance(mime, str):
                continue
            if isinstance(value, (dict, list)) and mime.endswith("json"):
                if json_nodes(value, MAX_JSON_NODES) > MAX_JSON_NODES:  # kept whole it would be rebuilt by nbformat
                    clean.setdefault("text/plain", f"[a {mime} output too large to keep]")
                    continue
                clean[mime] = value
            else:
                clean[mime] = _text(value)
        fields = {"data": clean, "metadata": {}}
        if kind == "execute_result":
            count = output.get("execution_count")
            fields["execution_count"] = count if type(count) is int else None
        return nbformat.v4.new_output(kind, **fields)
    return None


def _executor_bridge(executor) -> Callable[[str], dict]:
    """`bridge(request_text)` to the kernel: `{"event": "bridge", "reply": text}` or `{"event": "failed", ...}`.

    The reply stays text here: it is parsed in the judge's process, never in the grader's."""
    def bridge(request: str) -> dict:
        if hasattr(executor, "bridge"):  # a forked sandbox: the channel goes straight to the kernel
            event = executor.bridge(request)
        else:  # through the executor, as a user expression
            event = executor.command({"op": "bridge", "request": request}, expect="bridge")
        if event["event"] == "failed":
            return event
        text = event.get("reply")  # bounded by the judge before it parses it (`gradekit.judge.serve._reply`)
        return {"event": "bridge", "reply": text if isinstance(text, str) else None}

    return bridge


def run_judged(executor, nb: NotebookNode, program: dict[str, str], delimiters: Delimiters = NBGRADER_DEFAULTS):
    """Execute `nb` (sanitized, hidden tests included) in a started executor, judging its test cells.

    The kernel gets the notebook without hidden tests; each cell runs in order and, where the cell is
    one of the lab's (a test or a locked cell), the judge runs its trusted source right after it.
    Returns the sandbox's ExecutionResult with the notebook as nbgrader will score it."""

    problem = executor.start(kernel_notebook(nb, delimiters))
    if problem:
        executor.kill()
        mark_not_run(nb, problem)
        # The notebook never started (the executor or its zygote died, the imports failed): the grader's
        # fault, never the student's crash.
        return ExecutionResult(Status.GRADER_ERROR, f"grader error: {problem}", nb, 0.0, executor._log_tail())
    if not any(grade_id_of(cell) in program for cell in nb.cells):  # nothing to judge: no judge process
        return _run_cells(executor, None, nb, program)
    with lend(program, executor.limits, student_code(nb.cells), executor.runtime.python) as judge:
        return _run_cells(executor, judge, nb, program)


def _run_cells(executor, judge: JudgeProcess | None, nb: NotebookNode, program: dict[str, str]) -> ExecutionResult:
    bridge = _executor_bridge(executor)
    status, reason = "done", ""
    judge_seconds = judge_cpu = 0.0
    judged = False  # whether the hidden tests have called into the student's code yet
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            event = executor.command({"op": "cell", "index": index}, expect="cell")
            if event["event"] == "failed":
                status, reason = event["status"], event["reason"]
                break
            outputs = event.get("outputs") if isinstance(event.get("outputs"), list) else []
            # Once the judge has called the student's code with the hidden tests' inputs, what the kernel prints
            # can show them (a function that logs its arguments, a later cell that prints the log): it is not
            # kept. The verdicts come from the judge.
            cell.outputs = [] if judged else [o for o in map(clean_output, outputs) if o is not None]
            count = event.get("execution_count")
            cell.execution_count = count if type(count) is int else None
            cell_id = grade_id_of(cell)
            if cell_id in program:
                wall = time.monotonic()
                try:
                    verdict, cpu = judge.run(cell_id, is_test_cell(cell), bridge)
                except ChannelClosed as closed:
                    status, reason = closed.status, closed.reason
                    break
                finally:
                    judge_seconds += time.monotonic() - wall
                judge_cpu += cpu
                if is_test_cell(cell):
                    cell.outputs = judged_outputs(cell.outputs, verdict)
                    judged = True
            cell.metadata["gradekit_ran"] = True
    except JudgeFailed as failed:  # the grader's fault, whatever the student's values did to the judge
        status, reason = Status.GRADER_ERROR, f"grader error: {failed}"
    finally:
        seconds = executor.finish()
    mark_not_run(nb, reason) if status != "done" else [c.metadata.pop("gradekit_ran", None) for c in nb.cells]
    return ExecutionResult(status, reason, nb, seconds, executor._log_tail(), judge_seconds, judge_cpu)
