"""The instructor's commands (`gradekit <command>`, `python -m gradekit <command>`): one module each.

Each module has `add_arguments(parser)` and `main(args) -> int` and only reads arguments, checks them,
calls the package that does the work and prints; errors become one line and an exit code here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from gradekit.course import exits
from gradekit.grading import service_client

# command -> (module, one-line help). Each module has add_arguments(parser) and main(args) -> int.
COMMANDS = {
    "init": ("gradekit.commands.init", "make a new course in its own folder, apart from the kit"),
    "release": ("gradekit.commands.release", "regenerate release/ from source/ with nbgrader"),
    "collect": ("gradekit.commands.collect", "place an LMS download or a folder of files into submitted/"),
    "grade": ("gradekit.commands.grade", "grade submitted/ in parallel, sandboxed, into autograded/ and the gradebook"),
    "feedback": ("gradekit.commands.feedback", "write an HTML feedback page per student, without hidden tests"),
    "report": ("gradekit.commands.report", "write the instructor's report and grades.csv"),
    "demo": ("gradekit.commands.demo", "release the labs and grade a demo class end to end"),
    "bench": ("gradekit.commands.bench", "benchmark our grader against plain nbgrader autograde"),
    "corpus": ("gradekit.commands.corpus", "grade the wheat/chaff corpora and print the kill table"),
    "restore": ("gradekit.commands.restore", "put back the gradebook as it was before a collect or a grade"),
    "lms": ("gradekit.commands.lms", "grade files and feedback zips for the LMS; due dates"),
    "publish": ("gradekit.commands.publish", "push the student repository (release notebooks, lectures, Colab badges)"),
    "runtime": ("gradekit.commands.runtime", "build, show or refresh the Python environment notebooks are graded in"),
    "similarity": ("gradekit.commands.similarity", "flag pairs of students whose answers look alike, cell by cell"),
    "serve": ("gradekit.commands.serve", "keep a course's grader warm between commands: a regrade in seconds"),
}


def main(argv: list[str] | None = None) -> int:
    # A course kept warm by `gradekit serve` runs the command there, before anything heavy is imported here.
    forwarded = service_client.forward(sys.argv[1:] if argv is None else argv)
    if forwarded is not None:
        return forwarded
    parser = argparse.ArgumentParser(prog="gradekit", description=(
        "The course kit's instructor commands: release, collect, grade, feedback, report, the LMS round trip, "
        "publish; demo, bench, corpus."))
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(module_name=module_name)
        try:
            importlib.import_module(module_name).add_arguments(sub)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
    args = parser.parse_args(argv)
    return run_command(args)


def run_log(args: argparse.Namespace) -> Path:
    """This run's own log file: in the course's reports/logs/ when there is a course, else the temp folder."""
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    course = getattr(args, "course", None)
    folder = Path(course) / "reports" / "logs" if course and Path(course).is_dir() else Path(tempfile.gettempdir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir())
    return folder / f"gradekit-{args.command}-{stamp}.log"


def _log(args: argparse.Namespace) -> str:
    try:
        log = run_log(args)
        log.write_text(traceback.format_exc())
        return f"details in {log}"
    except OSError:
        return "no log written (the disk refused it)"


def run_command(args: argparse.Namespace) -> int:
    """Run one command: user errors and failures become one line and an exit code (see gradekit.course.exits)."""
    from gradekit.course.safe_text import terminal_safe  # imports nbgrader: not before a command runs here

    where = f"gradekit {args.command}"
    try:
        return int(importlib.import_module(args.module_name).main(args) or 0)
    except exits.UsageError as error:
        print(f"{where}: error: {terminal_safe(str(error), 600)}", file=sys.stderr)
        return exits.EXIT_USAGE
    except exits.ToolFailure as error:
        known = exits.environment_problem(error)
        if known:  # a fault of the machine or the database, said in one line without the raw message
            print(f"{where}: failed: {known[1]}; {_log(args)}", file=sys.stderr)
            return known[0]
        print(f"{where}: failed: {terminal_safe(str(error), 600)}", file=sys.stderr)
        return exits.EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\n{where}: interrupted; what was written is whole (each file replaced at once, each student's grade "
              "one transaction); run the command again to finish", file=sys.stderr)
        return exits.EXIT_INTERRUPTED
    except Exception as error:  # the machine (disk, database), or a bug of ours: one line here, the traceback in a file
        known = exits.environment_problem(error)
        if known:
            print(f"{where}: failed: {known[1]}; {_log(args)}", file=sys.stderr)
            return known[0]
        print(f"{where}: internal error ({type(error).__name__}: {terminal_safe(str(error).split('[SQL:')[0], 300)}); "
              f"{_log(args)}", file=sys.stderr)
        return exits.EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
