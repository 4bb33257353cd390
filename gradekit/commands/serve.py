"""`gradekit serve`: keep a course's grader warm between commands, so that a one-student regrade takes seconds.

The command line only; the service is `gradekit.grading.service`, what it keeps `gradekit.grading.kept`."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from gradekit.commands.grade import check_limits
from gradekit.course.checks import course_at
from gradekit.course.directory import Course
from gradekit.course.exits import EXIT_ATTENTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from gradekit.course.safe_text import terminal_safe
from gradekit.grading.kept import KeptLabs
from gradekit.grading.run import default_workers, warm_up
from gradekit.grading.service import Service
from gradekit.grading.service_client import ask
from gradekit.sandbox.limits import pid_alive
from gradekit.sandbox.settings import Limits

READY_SECONDS = 600.0  # `--detach` waits this long for the warm-up (three labs: ~30 s on a busy 2-core machine)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to warm up before the first command (default: every released "
                                                "lab); any other lab is kept warm after its first command")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--idle-minutes", type=float, default=60.0,
                        help="stop after this long without a command (default: %(default)g)")
    parser.add_argument("--workers", type=int, default=None,
                        help="warm the labs up for `grade --workers N` (default: grade's); a command with other "
                             "--workers, --timeout or --memory opens its own once, then that is kept")
    parser.add_argument("--timeout", type=float, default=Limits.timeout, help="as `grade --timeout`")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, help="as `grade --memory`")
    parser.add_argument("--detach", action="store_true",
                        help="serve in the background (its log in reports/logs/) and return once the labs are warm")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="say whether a service runs for the course, and what "
                                                              "it keeps")
    action.add_argument("--stop", action="store_true", help="stop the course's service (after the command it runs)")


def main(args: argparse.Namespace) -> int:
    course = course_at(args.course)
    if args.status:
        return _status(course)
    if args.stop:
        return _stop(course)
    if not args.idle_minutes > 0:
        print(f"gradekit serve: error: --idle-minutes {args.idle_minutes:g}: a positive number of minutes",
              file=sys.stderr)
        return EXIT_USAGE
    labs = args.labs or [lab for lab in course.labs()
                         if (course.release / lab / f"{course.notebook_name(lab)}.ipynb").is_file()]
    unknown = sorted(set(labs) - set(course.labs()))
    if unknown:
        print(f"gradekit serve: error: no such lab in {course.source}: {', '.join(map(terminal_safe, unknown))}",
              file=sys.stderr)
        return EXIT_USAGE
    limits = check_limits(argparse.Namespace(workers=args.workers or default_workers(), timeout=args.timeout,
                                             memory=args.memory))
    if args.detach:
        return _detach(course, labs, args)

    def warm(kept: KeptLabs) -> None:
        for lab in labs:
            began = time.monotonic()
            problem = warm_up(course, lab, kept, args.workers, limits)
            print(f"gradekit serve: {lab}: " + (f"not kept warm ({terminal_safe(problem, 300)})" if problem else
                                                f"warm in {time.monotonic() - began:.1f} s"), file=sys.stderr,
                  flush=True)

    Service(course.root, handle=lambda argv, cwd, kept: _grade(course, argv, cwd, kept),
            idle_seconds=args.idle_minutes * 60, warm_up=warm).serve()
    return EXIT_OK


def _grade(course: Course, argv: list[str], cwd: str, kept: KeptLabs) -> int:
    """One `gradekit grade` handed over by a command (`service_client.forward`), run here with the kept labs."""
    from gradekit.commands import grade, run_command

    parser = argparse.ArgumentParser(prog="gradekit grade")
    grade.add_arguments(parser)
    args = parser.parse_args(argv)
    args.course = (Path(cwd) / args.course).resolve()
    if args.course != course.root:
        print(f"gradekit grade: error: this service grades {course.root}, not {args.course}", file=sys.stderr)
        return EXIT_USAGE
    args.command, args.module_name, args.kept_labs = "grade", "gradekit.commands.grade", kept
    return run_command(args)


def _status(course: Course) -> int:
    answer = ask(course.root, {"op": "status"})
    if answer is None:
        print(f"no grading service for {course.root}")
        return EXIT_ATTENTION
    since = datetime.fromtimestamp(float(answer.get("since") or 0), UTC)
    print(f"gradekit serve (pid {answer.get('pid')}) serves {course.root} since {since:%Y-%m-%d %H:%M} UTC; "
          f"{answer.get('served', 0)} command(s) run; stops after {float(answer.get('idle_seconds', 0)) / 60:g} min "
          f"without a command" + (f"; running: {terminal_safe(str(answer['running']), 200)}"
                                  if answer.get("running") else "") + ("" if answer.get("ready") else
                                                                       "; warming up"))
    for lab, kept in sorted((answer.get("labs") or {}).items()):
        print(f"  {terminal_safe(lab, 60)}: warm, {kept.get('runs', 0)} run(s); sandboxes' zygote pid "
              f"{kept.get('zygote')}, nbgrader worker pid(s) {', '.join(map(str, kept.get('nbgrader_workers', [])))}")
    return EXIT_OK


def _stop(course: Course) -> int:
    answer = ask(course.root, {"op": "stop"})
    if answer is None:
        print(f"no grading service for {course.root}: nothing to stop")
        return EXIT_OK
    pid = int(answer.get("pid") or 0)
    if answer.get("running"):
        print(f"gradekit serve (pid {pid}) stops after the command it runs: {terminal_safe(answer['running'], 200)}")
    deadline = time.monotonic() + 3600
    while pid and pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"gradekit serve (pid {pid}) stopped; every kept process with it")
    return EXIT_OK


def _detach(course: Course, labs: list[str], args: argparse.Namespace) -> int:
    """The service in its own session, its output in reports/logs/; returns once it is warm (or failed)."""
    idle_minutes = args.idle_minutes
    logs = course.root / "reports" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"gradekit-serve-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gradekit", "serve", "--course", str(course.root), "--idle-minutes",
             str(idle_minutes), "--timeout", str(args.timeout), "--memory", str(args.memory),
             *(["--workers", str(args.workers)] if args.workers else []), *labs],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
            print(f"gradekit serve: failed to start: {terminal_safe(tail[0], 300)} (log: {log_path})",
                  file=sys.stderr)
            return EXIT_FAILED
        answer = ask(course.root, {"op": "status"}, timeout=2.0)
        if answer is not None and answer.get("ready") and answer.get("pid") == process.pid:
            print(f"gradekit serve (pid {process.pid}) keeps {course.root} warm ({', '.join(labs) or 'no lab yet'}); "
                  f"`gradekit grade` runs there now. Stops after {idle_minutes:g} min without a command or "
                  f"`gradekit serve --stop`; log: {log_path}")
            return EXIT_OK
        time.sleep(0.2)
    print(f"gradekit serve: not warm after {READY_SECONDS:g} s; it goes on warming (log: {log_path})", file=sys.stderr)
    return EXIT_ATTENTION
