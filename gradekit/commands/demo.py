"""`demo`: release the labs, then grade a small demo class end to end, as an instructor would.

The command line only; the work is `gradekit.proof.demo`."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from gradekit.authoring.release import release_lab
from gradekit.commands import main as gradekit_main
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.proof.demo import (
    autograded_points,
    demo_class,
    demo_problems,
    print_score_table,
    read_status,
    write_canvas_export,
    write_lms_zip,
    write_moodle_worksheet,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--course", type=Path, default=REPO_ROOT / "build" / "demo",
                        help="where to build the demo course (wiped first)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-release", action="store_true", help="use release/ as it is (tests)")


def main(args: argparse.Namespace) -> int:
    repo = Course(REPO_ROOT)
    labs = repo.labs()
    if not args.no_release:
        for lab in labs:
            release_lab(repo, lab)
        print(f"released {', '.join(labs)} into {repo.release}")

    if args.course.exists():
        shutil.rmtree(args.course)
    args.course.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", args.course)
    shutil.copytree(repo.source, args.course / "source")
    course = Course(args.course)
    for lab in labs:
        course.nbgrader("generate_assignment", lab, "--force")
        lms = "moodle" if len(labs) > 1 and lab == labs[1] else "canvas"
        download = args.course / "downloads" / f"{lab}_{lms}_submissions.zip"
        download.parent.mkdir(exist_ok=True)
        files = demo_class(course, lab)
        write_lms_zip(download, lab, course.notebook_name(lab), files, lms)
        roster = []
        if lms == "canvas" and lab == labs[0]:
            export = args.course / "downloads" / "canvas_gradebook_export.csv"
            write_canvas_export(export, list(files), [lab for lab in labs if lab != labs[min(1, len(labs) - 1)]]
                                if len(labs) > 1 else labs)
            roster = ["--roster", str(export)]
        if lms == "moodle":
            worksheet = args.course / "downloads" / f"{lab}_grading_worksheet.csv"
            write_moodle_worksheet(worksheet, list(files))
            roster = ["--roster", str(worksheet)]
        print(f"\n=== {lab} ({lms} download): collect, grade, feedback ===", flush=True)
        gradekit_main(["collect", lab, str(download), "--course", str(course.root), *roster])
        gradekit_main(["grade", lab, "--course", str(course.root),
                                          "--workers", str(args.workers)])
        gradekit_main(["feedback", lab, "--course", str(course.root)])
    gradekit_main(["report", *labs, "--course", str(course.root)])
    print("\n=== grade files for the LMSs ===", flush=True)
    gradekit_main(["lms", "grades", *labs, "--course", str(course.root)])
    statuses = {lab: read_status(course, lab) for lab in labs}
    print_score_table(statuses)
    print(f"\nfeedback pages: {course.feedback}\nreport: {course.root / 'reports' / 'index.html'}"
          f"\ngrades: {course.root / 'reports' / 'grades.csv'}")
    problems = demo_problems(statuses, {lab: autograded_points(course, lab) for lab in labs})
    for problem in problems:
        print(f"DEMO FAILED: {problem}")
    if not problems:
        print("demo ok: full marks for the solution, 0 for the untouched notebook, partial credit for bob, "
              "cora repaired, dan reported invalid, eve flagged")
    return 1 if problems else 0
