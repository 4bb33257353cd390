"""`corpus`: test the hidden tests with corpora of correct (wheat) and wrong (chaff) answers.

The command line only; the work is `gradekit.proof.corpus`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gradekit.course.directory import REPO_ROOT
from gradekit.proof.corpus import (
    CORPUS_ROOT,
    DEFAULT_TIMEOUT,
    find_lab,
    format_lab,
    format_totals,
    grade_labs,
    run_fidelity,
    to_json,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labs", nargs="*", help="labs to check (default: all in source/)")
    parser.add_argument("--workers", type=int, default=2, help="fast-mode worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per entry")
    parser.add_argument("--no-fidelity", action="store_true",
                        help="skip the sample graded through gradekit grade (sandbox, judge, nbgrader scoring)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "source", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, default=CORPUS_ROOT, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    names = args.labs or sorted(p.parent.name for p in args.source.glob("*/*.ipynb"))
    labs = [find_lab(name, args.source, args.corpus) for name in names]
    started = time.perf_counter()
    reports = grade_labs(labs, args.workers, args.timeout)
    fast_seconds = time.perf_counter() - started
    if not args.no_fidelity:
        run_fidelity(labs, reports)
    for report in reports:
        print(format_lab(report), end="\n\n")
    print(format_totals(reports))
    print(f"wall time: fast mode {fast_seconds:.1f} s, total {time.perf_counter() - started:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(to_json(reports), indent=1))
    return 0 if reports and all(r.ok for r in reports) else 1
