"""`python -m gradekit bench`: our grader against plain sequential `nbgrader autograde`, same class.

The command line only; the work is `gradekit.proof.bench`."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from gradekit.course.directory import REPO_ROOT, Course
from gradekit.grading.run import default_workers
from gradekit.proof.bench import (
    MODES,
    build_class,
    grade_once,
    judge_costs,
    notebook_seconds,
    phase_costs,
    print_notebook_timings,
    print_phases,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--students", type=int, default=20, help="students per lab")
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
    base, labs = build_class(source_course, args.out.resolve() / "base", args.students)
    submissions = args.students * len(labs)
    modes = {k: v for k, v in MODES.items() if not (args.skip_no_sandbox and v == ["--no-sandbox"])}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    reference = None
    identical = True

    print(f"bench: labs {', '.join(labs)}; {submissions} submissions; "
          f"{args.workers or default_workers()} gradekit workers on {os.cpu_count()} cores")
    for repeat in range(args.repeats):
        for mode, mode_args in modes.items():
            seconds, result = grade_once(base, args.out.resolve() / mode.replace(" ", ""), labs, mode_args,
                                         args.workers)
            times[mode].append(seconds)
            reference = reference if reference is not None else result
            same = result == reference and len(result) == submissions
            identical &= same
            print(f"  repeat {repeat + 1}: {mode:<22} {seconds:7.1f} s  "
                  f"{'scores identical' if same else 'SCORES DIFFER'}", flush=True)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    for mode, median in medians.items():
        print(f"median {mode:<22} {median:7.1f} s  {median / submissions:5.2f} s per submission")
    print(f"speed-up gradekit vs nbgrader: {medians['nbgrader'] / medians['gradekit']:.2f}x")
    if "gradekit --no-sandbox" in medians:
        overhead = (medians["gradekit"] - medians["gradekit --no-sandbox"]) / submissions
        print(f"sandbox overhead: {overhead:+.2f} s per submission")
    floor = notebook_seconds(args.out.resolve() / "gradekit", labs)
    if floor:
        print(f"per-submission floor (notebook alone, in a sandbox forked from the zygote): median "
              f"{statistics.median(floor):.2f} s, max {max(floor):.2f} s")
    print_phases(phase_costs(args.out.resolve() / "gradekit", labs))
    walls, cpus = judge_costs(args.out.resolve() / "gradekit", labs)
    if walls:
        print(f"trusted judge per submission: median {statistics.median(walls):.2f} s wall (its own work and "
              f"the kernel's answers), {statistics.median(cpus):.2f} s CPU of its own work; "
              f"max {max(walls):.2f} s")
    print("scores identical in every run" if identical else "SCORES DIFFER between graders")
    return 0 if identical else 1
