"""`runtime`: the environment the students' notebooks are graded in (course.toml `[runtime] pins`).

    gradekit runtime build            make it on this machine (`make setup` does; once per machine and pins)
    gradekit runtime show             which runtime grades the course, and where it is built
    gradekit runtime refresh FREEZE   rewrite the pins from Colab's pip-freeze.txt (googlecolab/backend-info)

The command line only; the work is `gradekit.sandbox.runtime` and `gradekit.authoring.runtime_pins`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.authoring.runtime_pins import refresh
from gradekit.course.checks import course_at
from gradekit.course.exits import UsageError
from gradekit.course.safe_text import terminal_safe
from gradekit.course.settings import runtime_pins
from gradekit.sandbox.runtime import (
    GRADER,
    KIT_ROOT,
    KernelRuntime,
    RuntimeMissing,
    build,
    course_pins,
    environment_path,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build", "show", "refresh"))
    parser.add_argument("freeze", nargs="?", type=Path, help="refresh: a `pip freeze` file (Colab's pip-freeze.txt)")
    parser.add_argument("--course", type=Path, default=None, help="course directory (default: this repository)")
    parser.add_argument("--os-info", type=Path, help="refresh: backend-info's os-info.txt (the Python version)")
    parser.add_argument("--python", help="refresh: the Python version, e.g. 3.13 (default: --os-info's, else the "
                                         "current pins')")
    parser.add_argument("--source", help="refresh: where the freeze comes from, for the pins file's header")


def main(args: argparse.Namespace) -> int:
    course = course_at(args.course)
    if args.action == "refresh":
        if args.freeze is None:
            raise UsageError("refresh needs the freeze file: gradekit runtime refresh pip-freeze.txt")
        named = runtime_pins(course.root)
        if named == GRADER:
            raise UsageError('[runtime] pins = "grader": the grader\'s environment has no pins file to refresh')
        target = course.root / named if (course.root / named).is_file() or course.root != KIT_ROOT else KIT_ROOT / named
        try:
            pins = refresh(args.freeze, target, args.python, args.os_info, args.source)
        except (OSError, ValueError, RuntimeMissing) as error:
            raise UsageError(terminal_safe(str(error), 2000)) from None
        print(f"wrote {target}: Python {pins.python}, {len(pins.requirements)} packages, torch "
              f"{pins.version_of('torch') or '(none)'}; now `gradekit runtime build`")
        return 0
    pins = course_pins(course.root)
    if pins is None:
        print(f"the grader's own environment grades this course: {KernelRuntime.grader().label}")
        return 0
    if args.action == "build":
        try:
            build(pins)
        except RuntimeMissing as error:
            raise UsageError(str(error)) from None
        return 0
    try:
        runtime = KernelRuntime.built(pins)
    except RuntimeMissing as error:
        print(f"{pins.path}: Python {pins.python}, torch {pins.version_of('torch')}; {error}")
        return 1
    print(f"{runtime.label} ({pins.path}), built in {environment_path(pins)}; imports map {runtime.import_mb} MB")
    return 0
