"""The judge's own process (`python -m gradekit.judge.serve`): trusted cells run here, one notebook at a time.

Whatever one student's values do to the judge (a crash in torch's C++ code, a hang, a memory blow-up), they
do it to this process, never to the grader's: the grader sees it end or overrun (`gradekit.judge.process`)
and the student gets a grader error, retried once alone. Nothing here trusts the kernel more than the
in-process judge did: every reply is bounded (`within_parse_budget`) before it is parsed.

Protocol, one JSON object per line; the grader writes on stdin, this process on its original stdout (what
a library prints goes to stderr, the grader's log):
- first line in: `{"program": {grade_id: source}, "memory_mb": N}`; out: `{"op": "ready"}`
- in `{"op": "begin"}`: a fresh judge for the next notebook
- in `{"op": "run", "cell": id, "test": bool}`; out, any number of `{"op": "bridge", "request": text}` (the
  grader answers each with `{"reply": text}` or `{"closed": true}`), then `{"op": "verdict", ...}`, or
  `{"op": "closed"}` when the kernel went away, or `{"op": "failed", "reason"}` and this process exits.
End of stdin: exit.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from typing import Any

from gradekit.judge.judge import ChannelClosed, Judge, JudgeOutOfMemory, import_for_judge
from gradekit.sandbox.executors import within_parse_budget


def _limit_memory(memory_mb: int) -> None:
    """Address space: what the imports took, plus `memory_mb` (an allocation past it fails here, not the
    machine)."""
    pages = int(open("/proc/self/statm").read().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _exit_with_parent() -> None:
    """A judge whose grader was killed outright stops too, even in the middle of a cell."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _reply(text: Any) -> dict:
    """A kernel reply as the judge reads it: a dict, or a BridgeError the checks report."""
    if isinstance(text, str) and not within_parse_budget(text):
        return {"error": {"type": "BridgeError", "message": "the answer is too large to check"}}
    try:
        reply = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        return {"error": {"type": "BridgeError", "message": "the kernel's answer could not be read"}}
    return reply


def serve(commands, answers) -> None:
    def say(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    def listen() -> dict:
        line = commands.readline()
        if not line:
            sys.exit(0)  # the grader is gone
        return json.loads(line)

    def send(request: dict) -> dict:
        say({"op": "bridge", "request": json.dumps(request)})
        answer = listen()
        if answer.get("closed"):
            raise ChannelClosed("closed", "the kernel stopped answering")
        return _reply(answer.get("reply"))

    _exit_with_parent()
    first = listen()
    program = first["program"]
    import torch

    torch.set_num_threads(1)  # the references are small; the notebooks have the cores
    import_for_judge(program)
    _limit_memory(int(first["memory_mb"]))
    say({"op": "ready"})
    judge: Judge | None = None
    while True:
        command = listen()
        if command["op"] == "begin":
            judge = Judge(send, program)
            continue
        cpu = time.process_time()
        try:
            verdict = judge.run(command["cell"], bool(command["test"]))
        except ChannelClosed:
            say({"op": "closed"})
            continue
        except JudgeOutOfMemory as error:
            say({"op": "failed", "reason": f"the judge ran out of memory ({str(error)[:200]})"})
            sys.exit(0)
        say({"op": "verdict", "passed": verdict.passed, "message": verdict.message, "ename": verdict.ename,
             "cpu": time.process_time() - cpu})


def main() -> int:
    commands = sys.stdin
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # a print in a library or a trusted cell goes to the log, never into the answers
    serve(commands, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
