"""`python -m gradekit bench`: our grader against plain sequential `nbgrader autograde`, same class.

The command line only; the work is `gradekit.proof.bench`."""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from gradekit.course.directory import REPO_ROOT, Course
from gradekit.proof.bench import (
    MODES,
    build_class,
    compare,
    judge_costs,
    notebook_seconds,
    phase_costs,
    print_notebook_timings,
    print_phases,
    regrade,
)
from gradekit.sandbox.runtime import course_runtime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--students", type=int, default=20, help="students per lab")
    parser.add_argument("--small-class", type=int, default=6,
                        help="students per lab of the small class measured too, where fixed costs weigh most (0: none)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="gradekit's workers (default: grade's own)")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="course whose source/ labs are used")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench")
    parser.add_argument("--skip-no-sandbox", action="store_true", help="do not measure the sandbox overhead")
    parser.add_argument("--notebooks-only", action="store_true",
                        help="only time the instructor notebooks (imports vs their own compute)")


def main(args: argparse.Namespace) -> int:
    source_course = Course(args.source.resolve())
    if not source_course.source.is_dir() or not source_course.labs():
        print(f"no labs in {source_course.source}", file=sys.stderr)
        return 1
    print_notebook_timings(source_course, source_course.labs())
    if args.notebooks_only:
        return 0
    out = args.out.resolve()
    # Both graders run the notebooks in the kit's kernel runtime (plain nbgrader through a python3 kernelspec of it).
    print(f"kernel runtime, both graders: {course_runtime(REPO_ROOT).label}")
    modes = {k: v for k, v in MODES.items() if not (args.skip_no_sandbox and v == ["--no-sandbox"])}
    base, labs = build_class(source_course, out / "base", args.students)
    medians, identical = compare(base, out, labs, modes, args.repeats, args.workers, args.students * len(labs))
    if "gradekit --no-sandbox" in medians:
        overhead = (medians["gradekit"] - medians["gradekit --no-sandbox"]) / (args.students * len(labs))
        print(f"sandbox overhead: {overhead:+.2f} s per submission")
    floor = notebook_seconds(out / "gradekit", labs)
    if floor:
        print(f"per-submission floor (notebook alone, in a sandbox forked from the zygote): median "
              f"{statistics.median(floor):.2f} s, max {max(floor):.2f} s")
    print_phases(phase_costs(out / "gradekit", labs))
    walls, cpus = judge_costs(out / "gradekit", labs)
    if walls:
        print(f"trusted judge per submission: median {statistics.median(walls):.2f} s wall (its own work and "
              f"the kernel's answers), {statistics.median(cpus):.2f} s CPU of its own work; "
              f"max {max(walls):.2f} s")
    identical &= regrade(out, labs, args.repeats, args.workers)
    if args.small_class:
        small, _ = build_class(source_course, out / "small", args.small_class)
        print(f"small class: {args.small_class} per lab")
        sandboxed_modes = {k: v for k, v in modes.items() if k != "gradekit --no-sandbox"}
        _, same = compare(small, out / "small-runs", labs, sandboxed_modes, args.repeats, args.workers,
                          args.small_class * len(labs))
        identical &= same
    print("scores identical in every run" if identical else "SCORES DIFFER between graders")
    return 0 if identical else 1
