"""`publish`: write the student-facing repository (release notebooks, lectures, a README with one

The command line only; the work is `gradekit.authoring.publish`."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradekit.authoring.publish import (
    PublishSettings,
    lab_path,
    leaks,
    load_settings,
    publish,
    student_tree,
    write_tree,
)
from gradekit.course.directory import repo_course
from gradekit.course.exits import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remote", help="push here instead of course.toml's remote (a URL or a local path)")
    parser.add_argument("--branch", help="publish on this branch instead of course.toml's")
    parser.add_argument("--out", type=Path, help="only write the student tree into this folder (no git)")
    parser.add_argument("--message", default="", help="commit message")


def main(args: argparse.Namespace) -> int:
    course = repo_course()
    settings = load_settings(course.root)
    settings = PublishSettings(settings.repository, args.branch or settings.branch, args.remote or settings.remote)
    if args.out:
        files = student_tree(course, settings)
        problems = leaks(course, files)
        if problems:
            raise UsageError("refusing to write:\n  " + "\n  ".join(problems))
        write_tree(files, args.out)
        print(f"wrote {len(files)} files to {args.out}")
        return 0
    commit = publish(course, settings, args.message)
    where = f"{settings.remote} (branch {settings.branch})"
    print(f"published {commit[:12]} to {where}" if commit else f"{where} is already up to date")
    for lab in course.labs():
        print(f"  {lab}: {settings.colab_url(lab_path(course, lab))}")
    return 0
