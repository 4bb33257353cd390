"""`gradekit grade LAB`: grade every submission, in parallel, sandboxed (`gradekit.grading.run`)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from gradekit.course import exits
from gradekit.course.backup import backup
from gradekit.course.checks import require_lab
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.exits import EXIT_ATTENTION, EXIT_OK, UsageError, interrupts_as_keyboard_interrupt
from gradekit.course.ledger import ungraded
from gradekit.course.lock import course_lock
from gradekit.course.status import Status, write_status
from gradekit.grading.progress import status_line
from gradekit.grading.run import MIN_MEMORY_MB, check_scorers, check_stagers, default_workers, grade_lab
from gradekit.sandbox import limits as sandbox_limits
from gradekit.sandbox.bwrap import bwrap_path
from gradekit.sandbox.settings import Limits
from gradekit.scoring import regrade
from gradekit.scoring.hand_grades import settle_lab, unsettled


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lab", help="assignment id, e.g. lab1")
    parser.add_argument("--course", type=Path, default=REPO_ROOT, help="course directory (default: repo root)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--student", nargs="+", metavar="ID", help="regrade only these students")
    chosen.add_argument("--outdated", action="store_true",
                        help="grade only the students without a current grade: not graded yet, submitted again "
                             "since, a grader error, or graded on tests that have changed since")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="notebooks run at once (default: one more than the cores, %(default)s here: a "
                             "notebook waiting on its judge leaves its core to the next)")
    parser.add_argument("--timeout", type=float, default=Limits.timeout,
                        help="wall time for a whole notebook, seconds")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb,
                        help="address space per process for the notebook's own work, MB, beyond what the kernel "
                             "runtime's imports map (measured when it is built: `gradekit runtime show`)")
    parser.add_argument("--scorers", type=int, default=None,
                        help="processes scoring at once (default: 1 on SQLite; on a server gradebook one per 8 "
                             "cores)")
    parser.add_argument("--stagers", type=int, default=None,
                        help="processes staging (copy, repair, sanitize) at once (default: one per 8 cores; raise "
                             "it when the notebooks run on a Dask cluster)")
    parser.add_argument("--no-sandbox", action="store_true", help="resource limits only, no bubblewrap")
    parser.add_argument("--no-serve", action="store_true",
                        help="run here even when `gradekit serve` keeps the course warm (else it runs there)")
    parser.add_argument("--no-warm", action="store_true",
                        help="start each sandbox cold (its own bwrap and imports) instead of forking it from "
                             "the zygote that imported the lab's modules once")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run the notebooks on a Dask cluster: its scheduler's address (tcp://host:8786), "
                             "a scheduler file (.json), or `config` (Dask's scheduler-address); see docs/scaling.md")
    parser.epilog = "exit codes: " + "; ".join(line.strip("| ").replace(" | ", ": ") for line in
                                               exits.__doc__.splitlines() if line.startswith("| ") and
                                               line[2].isdigit())


def _warn_unsandboxed() -> None:
    bar = "!" * 78
    print(f"{bar}\nWARNING: student notebooks run WITHOUT a sandbox (bubblewrap "
          f"{'missing' if bwrap_path() is None else 'disabled'}):\nthey can read the hidden tests, "
          f"the gradebook and other submissions, and use the network.\nOnly resource limits apply.\n{bar}",
          file=sys.stderr)


def check_limits(args: argparse.Namespace) -> Limits:
    """Limits that can work, or a UsageError saying which one cannot (before anything is touched)."""
    if args.workers < 1:
        raise UsageError(f"--workers {args.workers}: at least one notebook must run at a time")
    if not (args.timeout > 0 and math.isfinite(args.timeout)):
        raise UsageError(f"--timeout {args.timeout:g}: the time for a notebook must be a positive number of seconds")
    if args.memory < MIN_MEMORY_MB:
        raise UsageError(f"--memory {args.memory} MB leaves a notebook too little room for its own work beyond "
                         f"the imports: use at least {MIN_MEMORY_MB} MB (default {Limits.memory_mb})")
    return Limits(timeout=args.timeout, memory_mb=args.memory)


def _shown(course: Course, path: Path) -> Path:
    """A path inside the course as the instructor finds it from the course folder (reports/lab1/...)."""
    return path.relative_to(course.root) if path.is_relative_to(course.root) else path


def main(args: argparse.Namespace) -> int:
    course = Course(args.course.resolve())
    limits = check_limits(args)
    require_lab(course, args.lab)
    check_scorers(course, args.scorers)
    check_stagers(args.stagers)
    started = time.monotonic()
    with course_lock(course), interrupts_as_keyboard_interrupt():
        students = args.student
        if args.outdated:
            students = ungraded(course, args.lab)
            if not students:
                if unsettled(course, args.lab):  # hand grades a killed run left pending: put back
                    backup(course, f"settle-{args.lab}")
                    settle_lab(course, args.lab)
                print(f"{args.lab}: every submission has a current grade: nothing to grade", file=sys.stderr)
                return EXIT_OK
            print(f"{args.lab}: grading {len(students)} student(s) without a current grade", file=sys.stderr)
        before = regrade.snapshot(course.db_url, args.lab)  # what the run may change, before it writes
        run = grade_lab(course, args.lab, args.workers, limits, sandboxed=not args.no_sandbox,
                        warm=not args.no_warm, progress=sys.stderr, students=students,
                        scheduler=args.scheduler, scorers=args.scorers, stagers=args.stagers,
                        kept_labs=getattr(args, "kept_labs", None))  # set by `gradekit serve`
        moved = regrade.diff(before, regrade.snapshot(course.db_url, args.lab))
        moved_csv = regrade.write_csv(moved, course.lab_reports(args.lab))
    if not run.sandboxed:
        _warn_unsandboxed()
    else:
        print(f"sandbox bounds: {sandbox_limits.mechanism()}", file=sys.stderr)
    print(f"kernel runtime: {run.runtime} (course.toml [runtime])", file=sys.stderr)
    for status in run.students:
        print(status_line(status))
    path = write_status(course, run.status_file(), partial=students is not None)
    kinds = list(Status)
    counts = {s: sum(1 for x in run.students if x.status == s) for s in kinds}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"{args.lab}: {len(run.students)} students: {summary or 'no submissions'} in "
          f"{time.monotonic() - started:.1f} s ({'sandboxed' if run.sandboxed else 'NOT SANDBOXED'}); "
          f"status in {path}", file=sys.stderr)
    print(f"{args.lab}: {moved.summary()} ({_shown(course, moved_csv)})", file=sys.stderr)
    if run.retried:
        print(f"{args.lab}: {len(run.retried)} notebook(s) ran again alone after an end they may not have caused "
              "(a killed kernel, a judge that failed, a timeout while other notebooks shared the machine)",
              file=sys.stderr)
    if counts[Status.GRADER_ERROR]:  # the grader's fault, never the students': their old grades show as outdated
        print(f"{args.lab}: {counts[Status.GRADER_ERROR]} grader error(s), not the students' doing: "
              f"`gradekit grade {args.lab} --outdated` grades them again", file=sys.stderr)
        return EXIT_ATTENTION
    return EXIT_OK if run.all_graded else EXIT_ATTENTION
