"""The judge's own processes (`python -m gradekit.judge.serve FD`): trusted cells run there, never in the grader.

One **judge zygote** per grading run imports torch and what the lab's trusted cells import (~2 s of CPU),
then forks **one judge per notebook** (a few ms): a fresh process for every student, nothing of one
judged notebook left for the next. Whatever one student's values do to their judge (a crash in torch's C++
code, a hang, a memory blow-up) they do to that process only: the grader sees it end or overrun
(`gradekit.judge.process`) and the student gets a grader error, retried once alone. Every reply from the
kernel is bounded (`within_parse_budget`) before it is parsed, here as before.

The zygote reads `{"program": {grade_id: source}, "memory_mb": N}` on stdin (to its end), then answers on
its control socket (SOCK_SEQPACKET, fd FD, one JSON object per packet):
- out `{"op": "ready"}` once the imports are done
- in `{"op": "fork"}` with a stream socket attached; out `{"pid": N}`: that judge serves the socket
- in `{"op": "status", "pid": N}`; out `{"status": text}`: how that judge ended ("" while it runs)
- end of file: the zygote exits (its judges see their grader gone and exit too).

A judge's stream socket, one JSON object per line, the grader writing first:
- in, once, `{"op": "student_code", "cells": [source, ...], "runtime_python": path}`: the notebook's own code,
  read (never run) by the "by hand" checks, with the kernel runtime's interpreter for the syntax this one lacks
- in `{"op": "run", "cell": id, "test": bool}`; out, any number of `{"op": "bridge", "request": text}` (the
  grader answers each with `{"reply": text}` or `{"closed": true}`), then `{"op": "verdict", ...}`, or
  `{"op": "closed"}` when the kernel went away, or `{"op": "failed", "reason"}` and the judge exits.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from gradekit.judge.judge import ChannelClosed, Judge, JudgeOutOfMemory, import_for_judge
from gradekit.sandbox.executors import within_parse_budget


def _limit_memory(memory_mb: int) -> None:
    """Address space: what the judge holds now, plus `memory_mb` (an allocation past it fails in the judge)."""
    pages = int(open("/proc/self/statm").read().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _exit_with_parent() -> None:
    """A judge whose zygote (and so whose grader) is gone stops too, even in the middle of a cell."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _warm_up() -> None:
    """First uses that cost, paid once here rather than by every forked judge: an optimizer's first step
    imports torch._dynamo (~1 s of CPU); autograd and torch.func set themselves up."""
    import torch

    weights = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([weights], lr=0.1)
    (weights * weights).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    torch.func.grad(lambda v: (v * v).sum())(torch.ones(2, dtype=torch.float64))


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


def judge_one_notebook(stream: socket.socket, program: dict[str, str]) -> None:
    """A forked judge: serve one notebook's cells on `stream` until the grader closes it."""
    commands, answers = stream.makefile("r", encoding="utf-8"), stream.makefile("w", encoding="utf-8")

    def say(message: dict) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    def listen() -> dict:
        line = commands.readline()
        if not line:
            os._exit(0)  # the grader is done with this notebook, or gone
        return json.loads(line)

    def send(request: dict) -> dict:
        say({"op": "bridge", "request": json.dumps(request)})
        answer = listen()
        if answer.get("closed"):
            raise ChannelClosed("closed", "the kernel stopped answering")
        return _reply(answer.get("reply"))

    first = listen()
    parser = first.get("runtime_python")
    judge = Judge(send, program, [str(cell) for cell in first.get("cells", [])],
                  parser if isinstance(parser, str) else None)
    while True:
        command = listen()
        cpu = time.process_time()
        try:
            verdict = judge.run(command["cell"], bool(command["test"]))
        except ChannelClosed:
            say({"op": "closed"})
            continue
        except JudgeOutOfMemory as error:
            say({"op": "failed", "reason": f"the judge ran out of memory ({str(error)[:200]})"})
            os._exit(0)
        say({"op": "verdict", "passed": verdict.passed, "message": verdict.message, "ename": verdict.ename,
             "cpu": time.process_time() - cpu})


def _ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"the judge's process was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"the judge's process exited (code {os.waitstatus_to_exitcode(status)})"


def zygote(control: socket.socket) -> None:
    def say(message: dict) -> None:
        control.send(json.dumps(message).encode())

    first = json.loads(sys.stdin.read())
    program, memory_mb = first["program"], int(first["memory_mb"])
    import torch

    torch.set_num_threads(1)  # the references are small; the notebooks have the cores
    import_for_judge(program)
    _warm_up()
    say({"op": "ready"})
    ended: dict[int, str] = {}  # pid -> how it ended, for the grader's `status` question
    while True:
        message, fds, _, _ = socket.recv_fds(control, 4096, 1)
        if not message:
            return
        request = json.loads(message)
        if request["op"] == "fork":
            stream = socket.socket(fileno=fds[0])
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    control.close()
                    _exit_with_parent()
                    _limit_memory(memory_mb)
                    judge_one_notebook(stream, program)
                except BaseException:  # noqa: BLE001 - the judge's own bug: its log says which, its exit code that
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            stream.close()
            say({"pid": pid})
        elif request["op"] == "status":
            pid = int(request["pid"])
            give_up = time.monotonic() + 5.0
            while pid not in ended and time.monotonic() < give_up:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    ended[pid] = _ended(status)
                else:
                    time.sleep(0.02)
            say({"status": ended.pop(pid, "")})
        _reap(ended)


def _reap(ended: dict[int, str]) -> None:
    """Collect the judges that ended (their statuses kept for a question, at most a few hundred)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not pid:
            return
        ended[pid] = _ended(status)
        if len(ended) > 500:
            ended.pop(next(iter(ended)))


def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    os.dup2(2, 1)  # a print in a library or a trusted cell goes to the log, never into a socket
    zygote(control)
    return 0


if __name__ == "__main__":
    sys.exit(main())
