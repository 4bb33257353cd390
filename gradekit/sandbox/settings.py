"""The limits of one sandbox, as the grader configures them: per process (wall and CPU time, address space,
processes, file size), for the sandbox as a whole (memory, disk, threads), and for the judge beside it. Data
only: `gradekit.sandbox.bwrap` turns them into rlimits, `gradekit.sandbox.limits` into cgroups and a tmpfs
quota, `gradekit.judge.process` bounds the judge's process with the last two."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    timeout: float = 300.0  # whole notebook, wall-clock seconds
    # Address space per process for the notebook's own work, beyond what the kernel runtime's imports map
    # (`KernelRuntime.import_mb`: ~1 GB with the grader's CPU torch, ~4 GB with Colab's CUDA build).
    memory_mb: int = 3072
    cpu_seconds: int | None = None  # per process; default: the wall timeout
    processes: int = 256  # tasks (processes and threads) of the sandbox's uid, and of its cgroup
    file_size_mb: int = 64
    sandbox_memory_mb: int = 6144  # all processes of one sandbox together (cgroup), files in /submission apart
    disk_mb: int = 512  # /submission: a tmpfs of this size (its pages count in the cgroup too)
    # CPU threads of one notebook's numeric libraries (torch's OpenMP, MKL, OpenBLAS); None: their default
    # (every core). `grade` gives each of N workers its share of the cores: N notebooks at once with a
    # thread per core each would spin-wait against each other.
    threads: int | None = None
    # The judge's process beside the sandbox (`gradekit.judge.process`): its own seconds for one trusted cell
    # (the kernel's calls apart), and memory beyond its imports. Past either: a grader error, retried once.
    judge_seconds: float = 60.0
    judge_memory_mb: int = 3072
