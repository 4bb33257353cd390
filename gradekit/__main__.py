"""`python -m gradekit <command>`: the instructor's commands, one module each."""

from __future__ import annotations

import argparse
import importlib
import sys

# command -> (module, one-line help). Each module has add_arguments(parser) and main(args) -> int.
COMMANDS = {
    "release": ("gradekit.release", "regenerate release/ from source/ with nbgrader"),
    "collect": ("gradekit.collect", "place an LMS download or a folder of files into submitted/"),
    "grade": ("gradekit.grade", "grade submitted/ in parallel, sandboxed, into autograded/ and the gradebook"),
    "feedback": ("gradekit.feedback", "write an HTML feedback page per student, without hidden tests"),
    "report": ("gradekit.report", "write the instructor's report and grades.csv"),
    "demo": ("gradekit.demo", "release the labs and grade a demo class end to end"),
    "bench": ("gradekit.bench", "benchmark our grader against plain nbgrader autograde"),
    "corpus": ("gradekit.corpus", "grade the wheat/chaff corpora and print the kill table"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradekit", description=__doc__)
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
    return int(importlib.import_module(args.module_name).main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
