"""The nbgrader side of a grading run: staging (copy, repair, sanitize) and scoring, in a worker process.

`gradekit.grading.run` runs the notebooks and their judge in its own process; nbgrader's passes run in a
worker process beside it, so they do not hold up the judge's threads (one interpreter lock):
- staging copies and repairs each submission and sanitizes it with nbgrader's own sanitize
  preprocessors (`Sanitizer`), on a private copy of the gradebook; all submissions are staged
  within seconds, while the first notebooks run;
- scoring runs nbgrader's Autograde on the real gradebook, with `Execute` replaced by
  `LookupExecute` (the notebook executed and judged in the sandbox), as each notebook finishes.
  The worker is the only writer of the gradebook during the run; one student's record at a time.

The worker ignores Ctrl-C and SIGTERM: the grader stops sending work and waits for the student in
hand, so a record is never half written. Protocol: one JSON task per line on stdin, one JSON answer
per line on the worker's result stream (its original stdout; its own prints go to the log).

`gradekit serve` keeps a lab's workers between runs: a `reset` task makes one forget everything it read
(the course's config, the release, its gradebook connections) before the next run, so that a kept worker
works as a new one would, without importing nbgrader again.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import nbformat

from gradekit.course.directory import Course
from gradekit.course.exits import EXIT_USAGE, ToolFailure, UsageError, environment_problem
from gradekit.course.status import Status, StudentStatus
from gradekit.sandbox.executors import ExecutionResult
from gradekit.scoring.autograde import score_one, scoring_api
from gradekit.staging.sanitize import Sanitizer, stage


def read_release(course: Course, lab: str) -> nbformat.NotebookNode | None:
    path = course.release / lab / f"{course.notebook_name(lab)}.ipynb"
    return nbformat.read(path, as_version=4) if path.exists() else None


def _serve(course: Course, lab: str, staging: Path, answers) -> None:
    config = course.config()
    release_nb = read_release(course, lab)
    sanitizer = scorer = None
    for line in sys.stdin:
        task = json.loads(line)
        if task["op"] == "reset":  # a new run of a kept worker: read everything again, as at the start
            _dispose_engines()
            config, release_nb, sanitizer, scorer = course.config(), read_release(course, lab), None, None
            answers.write(json.dumps({"reset": True}) + "\n")
            answers.flush()
            continue
        student = task["student"]
        if task["op"] == "stage":
            sanitizer = sanitizer or Sanitizer(config, course, lab, f"sqlite:///{staging / 'gradebook-copy.db'}")
            began = time.monotonic()
            status = stage(course, lab, student, staging, release_nb)
            notebook = None
            if status.status == Status.GRADED:
                try:
                    notebook = str(sanitizer.sanitize(staging, student))
                except Exception as error:  # noqa: BLE001 - nbgrader refused the notebook: that student only
                    status.status, status.reason = Status.INVALID, f"nbgrader could not sanitize it: {error}"[:300]
            answer = {"status": asdict(status), "notebook": notebook, "seconds": time.monotonic() - began}
        else:
            scorer = scorer or scoring_api(config, staging)
            answer = score_one(course, lab, scorer, student, task["outcome_status"], task["outcome_reason"])
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


_engines: dict[tuple, object] = {}


def _dispose_engines() -> None:
    """Close every shared engine's connections and forget the engines (before the gradebook copy is replaced)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def _share_engines() -> None:
    """One SQLAlchemy engine per database in this worker, shared by every `Gradebook` nbgrader opens.

    nbgrader opens a new Gradebook (a new engine) in each of its steps, for each student, so
    SQLAlchemy's per-engine cache of compiled statements never warms up: sharing the engine
    halves the scorer's CPU. Same statements, same sessions and transactions; this process only
    (one thread), and `Gradebook.close()`'s `dispose()` only recycles the shared pool's connections."""
    import nbgrader.api

    create_engine = nbgrader.api.create_engine

    def shared_engine(url, **options):
        key = (str(url), tuple(sorted(options.items())))
        if key not in _engines:
            _engines[key] = create_engine(url, **options)
        return _engines[key]

    nbgrader.api.create_engine = shared_engine


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("course", type=Path)
    parser.add_argument("lab")
    parser.add_argument("staging", type=Path)
    args = parser.parse_args()
    # The grader decides when to stop: between two students, never in the middle of a record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever nbgrader or a library prints goes to the log, not into the answers
    _share_engines()
    _serve(Course(args.course), args.lab, args.staging, answers)
    return 0


class StepsWorker:
    """The worker process (see the module's docstring); `run(task)` blocks until its answer. Thread-safe:
    the grader's thread stages while the scoring thread scores, one task at a time."""

    def __init__(self, course: Course, lab: str, staging: Path, role: str) -> None:
        self.role = role
        self._lock = threading.Lock()
        self.log_path = staging / f"{role}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gradekit.grading.nbgrader_worker", str(course.root), lab, str(staging)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"})

    def run(self, task: dict) -> dict:
        with self._lock:
            return self._run(task)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def reset(self) -> None:
        """Before a new run of a kept worker: it forgets the last run (see the module's docstring)."""
        self.run({"op": "reset"})

    def _run(self, task: dict) -> dict:
        try:
            self.process.stdin.write(json.dumps(task) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] if self.log_path.exists() else []
            last = tail[0].split("[SQL:")[0][:300] if tail else "no message"
            known = environment_problem(last)  # the gradebook locked, its server gone, the disk full
            if known and known[0] == EXIT_USAGE:
                raise UsageError(known[1])
            raise ToolFailure(known[1] if known else f"{self.role} (nbgrader's passes) stopped: {last}")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WorkerThreads:
    """One thread per nbgrader worker process, each handing it queued items one at a time (`handle(worker,
    *item)`). `finish()` waits until every item is handled and raises the first error (items after it
    are dropped); `stop()` lets the items in hand finish and drops the rest."""

    def __init__(self, workers: list[StepsWorker], handle: Callable[..., None]) -> None:
        self.handle = handle
        self.queue: queue.Queue = queue.Queue()
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._work, args=(worker,), daemon=True) for worker in workers]
        for thread in self.threads:
            thread.start()

    def submit(self, *item) -> None:
        self.queue.put(item)

    def _work(self, worker: StepsWorker) -> None:
        while (item := self.queue.get()) is not None:
            if self.stopped.is_set() or self.error is not None:
                continue
            try:
                self.handle(worker, *item)
            except BaseException as error:  # noqa: BLE001 - raised by finish() in the grader's thread
                self.error = self.error or error

    def _join(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()

    def stop(self) -> None:
        self.stopped.set()
        self._join()

    def finish(self) -> None:
        self._join()
        if self.error is not None:
            raise self.error


class Scoring(WorkerThreads):
    """Scores each executed notebook as it arrives (`submit(student, result)`), in the nbgrader worker
    processes: one (SQLite takes one writer at a time) or several on a server gradebook, each on its own
    sessions, one student's record at a time each."""

    def __init__(self, scorers: list[StepsWorker], course: Course, lab: str, staging: Path,
                 statuses: dict[str, StudentStatus], phases: dict[str, list[float]], bar) -> None:
        self.course, self.lab, self.staging = course, lab, staging
        self.statuses, self.phases, self.bar = statuses, phases, bar
        self.results: dict[str, ExecutionResult] = {}
        super().__init__(scorers, self._score)

    def _score(self, scorer: StepsWorker, student: str, result: ExecutionResult) -> None:
        self.results[student] = result
        status = self.statuses[student]
        status.seconds = round(result.seconds, 2)
        status.judge_seconds, status.judge_cpu = round(result.judge_seconds, 3), round(result.judge_cpu, 3)
        if result.status == Status.GRADER_ERROR:  # not the student's doing: their previous grade stays
            status.status, status.reason = Status.GRADER_ERROR, result.reason
        else:
            self.phases["execution"].append(result.seconds)
            self.phases["judge"].append(result.judge_seconds)
            executed = self.staging / "executed" / student / f"{self.course.notebook_name(self.lab)}.ipynb"
            executed.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(result.notebook, executed)
            answer = scorer.run({"op": "score", "student": student, "outcome_status": result.status,
                                 "outcome_reason": result.reason})
            self.phases["scoring"].append(answer["seconds"])
            status.status, status.reason = answer["status"], answer["reason"]
            status.score, status.max_score = answer["score"], answer["max_score"]
            status.late_penalty = float(answer.get("late_penalty") or 0.0)
        self.bar.update(1)


if __name__ == "__main__":
    sys.exit(main())
