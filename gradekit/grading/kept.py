"""What a grading run of one lab starts before its first notebook (`LabResources`), and what `gradekit serve` keeps
of it between runs (`KeptLabs`).

A run's resources are its staging folder (0700: the submissions and the hidden tests; `runs/` in it is the
sandboxes' spool), the sandboxes' zygote (the kernel runtime with the lab's modules imported: seconds of CPU)
and nbgrader's worker processes (nbgrader imported: ~1.5 s each). `gradekit grade` opens them for one run and
closes them after it. `gradekit serve` keeps them per lab and lends them to the next run that would open the
same ones (same runtime, imports, limits, Execute settings and number of workers), after `reset()`: the last
run's files are removed and the workers forget what they read, so that the run reads the course, its config,
release and gradebook afresh. The judges' zygote is kept by `gradekit.judge.process` (keyed by the lab's trusted
program: changed hidden tests start a new one).

Isolation does not change: every notebook is still forked from the zygote into its own namespaces, uid, /tmp
and cgroup, and the zygote never runs student code. A run that did not end normally (an error, an interrupt)
gives nothing back: what it used is closed, and the next run starts afresh.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gradekit.course.directory import Course
from gradekit.grading.nbgrader_worker import StepsWorker
from gradekit.judge import process as judges
from gradekit.sandbox.launch import Sandbox

STAGING_PREFIX, OWNER_FILE = "gradekit-", "owner.pid"
SPOOL = "runs"  # the sandboxes' spool in the staging folder: the zygote's view, kept with it
KEPT_FILES = {OWNER_FILE, SPOOL}  # with the logs (nbgrader*.log, zygote.log); the rest of a staging folder is one run's


@dataclass
class LabResources:
    """One lab's staging folder, sandbox and nbgrader workers (see the module's docstring)."""

    key: tuple
    staging: Path
    sandbox: Sandbox
    steps: list[StepsWorker] = field(default_factory=list)
    runs: int = 0  # runs it has served

    @classmethod
    def open(cls, key: tuple, course: Course, lab: str, sandbox: dict, processes: int) -> LabResources:
        """A new staging folder owned by this process, a `Sandbox(**sandbox)` spooling in it (zygote not started
        yet: `start_zygote()`), and `processes` nbgrader workers (none: no submission to grade)."""
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{lab}-"))  # 0700: submissions, hidden tests
        (staging / OWNER_FILE).write_text(str(os.getpid()))
        resources = cls(key, staging, Sandbox(staging / SPOOL, **sandbox))
        try:
            (staging / SPOOL).mkdir()
            resources.steps = [StepsWorker(course, lab, staging, f"nbgrader{n}" if n else "nbgrader")
                               for n in range(processes)]
        except BaseException:
            resources.close()
            raise
        return resources

    @property
    def alive(self) -> bool:
        """Whether its workers still run (a zygote killed from outside is replaced by `Sandbox.prepare`)."""
        return self.staging.is_dir() and all(worker.alive for worker in self.steps)

    def reset(self) -> None:
        """Before a run that reuses these: the last run's files removed (its sandboxes' folders and logs in the
        spool too: every one was stopped), the workers as new."""
        spool = self.staging / SPOOL
        for entry in [*self.staging.iterdir(), *spool.iterdir()]:
            if entry.name in KEPT_FILES or (entry.parent == self.staging and entry.name.endswith(".log")):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for worker in self.steps:
            worker.reset()

    def close(self) -> None:
        for worker in self.steps:
            worker.close()
        self.sandbox.close()
        shutil.rmtree(self.staging, ignore_errors=True)


class KeptLabs:
    """The resources `gradekit serve` keeps per lab between runs, one set per lab; thread-safe."""

    def __init__(self) -> None:
        self._labs: dict[str, LabResources] = {}
        self._lock = threading.Lock()

    def take(self, lab: str, key: tuple) -> LabResources | None:
        """The lab's kept resources if they are what a run with `key` would open, reset for it; else None (what
        was kept for other settings is closed: one set per lab)."""
        with self._lock:
            kept = self._labs.pop(lab, None)
        if kept is None:
            return None
        if kept.key != key or not kept.alive:
            kept.close()
            return None
        try:
            kept.reset()
        except Exception:  # noqa: BLE001 - a worker that cannot reset is replaced, never used half reset
            kept.close()
            return None
        return kept

    def give_back(self, lab: str, resources: LabResources, served: bool = True) -> None:
        resources.runs += served
        with self._lock:
            previous, self._labs[lab] = self._labs.get(lab), resources
        if previous is not None and previous is not resources:
            previous.close()

    def summary(self) -> dict[str, dict]:
        """Per kept lab: runs served and the processes kept warm (for `gradekit serve --status`)."""
        with self._lock:
            labs = dict(self._labs)
        return {lab: {"runs": kept.runs, "zygote": kept.sandbox.zygote_pid,
                      "nbgrader_workers": [worker.process.pid for worker in kept.steps]}
                for lab, kept in labs.items()}

    def close(self) -> None:
        """Close every lab's resources and the judges' zygotes (the service stops)."""
        with self._lock:
            labs, self._labs = list(self._labs.values()), {}
        for kept in labs:
            kept.close()
        judges.stop_zygotes()
