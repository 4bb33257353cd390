"""`Sandbox`: starts a grading run's executors, each forked from a zygote (`gradekit.sandbox.forked`) when
sandboxed as root, else cold (`gradekit.sandbox.executors`)."""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gradekit.sandbox import bwrap  # bwrap_path looked up on the module: a test may replace it there
from gradekit.sandbox.executors import RunningExecutor
from gradekit.sandbox.forked import ForkedExecutor, Zygote
from gradekit.sandbox.runtime import KernelRuntime
from gradekit.sandbox.settings import Limits


@dataclass
class Sandbox:
    """Starts executors, sandboxed when bwrap is available and wanted."""

    scratch: Path
    limits: Limits = field(default_factory=Limits)
    sandboxed: bool = True
    warm_modules: list[str] = field(default_factory=list)
    execute_settings: dict = field(default_factory=dict)

    fork: bool = True  # a zygote forks each sandbox (sandboxed, as root); else each starts cold
    runtime: KernelRuntime | None = None  # the environment the kernels run in (default: the grader's)

    def __post_init__(self) -> None:
        self.runtime = self.runtime or KernelRuntime.grader()
        self.sandboxed = self.sandboxed and bwrap.bwrap_path() is not None
        self.fork = self.fork and self.sandboxed and os.geteuid() == 0
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._zygote: Zygote | None = None

    def prepare(self) -> None:
        """Start the zygote now (its imports take seconds), not at the first `start()`."""
        with self._lock:
            if self.fork and self._zygote is not None and not self._zygote.alive:
                self._zygote.close()  # killed from outside: its notebooks run again, from a new one
                self._zygote = None
            if self.fork and self._zygote is None:
                self._zygote = Zygote(self.scratch, self.warm_modules, self.limits, self.runtime)

    def ready(self) -> str | None:
        """Once the zygote has imported the lab's modules: None, or why it cannot fork sandboxes (no zygote: None)."""
        self.prepare()
        zygote = self._zygote
        return zygote.ready() if zygote is not None else None

    @property
    def zygote_pid(self) -> int | None:
        """The running zygote's pid (None: none running)."""
        zygote = self._zygote
        return zygote.process.pid if zygote is not None and zygote.alive else None

    def start(self) -> RunningExecutor:
        self.prepare()
        with self._lock:
            workdir = self.scratch / f"run{next(self._counter):05d}"
        if self.fork:
            return ForkedExecutor(self._zygote, workdir, self.limits, self.execute_settings)
        return RunningExecutor(workdir, self.limits, self.sandboxed, self.warm_modules,
                               self.execute_settings, self.runtime)

    def close(self) -> None:
        """Stop the zygote (the executors it forked are stopped by their own `kill`)."""
        with self._lock:
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.close()
