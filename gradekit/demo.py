"""`demo`: release the labs, then grade a small demo class end to end, as an instructor would.

The demo class lives in its own course directory (build/demo, with its own gradebook), so
it never mixes with real grades in the repository root. Per lab it has:
  ada    the instructor's solution, typed into the student notebook
  blank  the untouched student notebook
  bob    one function wrong (the last answer cell of the lab)
  cora   ada's notebook after a Colab round trip: nbgrader metadata lost, Colab metadata added
  dan    a damaged file (truncated JSON)
  eve    a correct notebook that also monkeypatches torch.allclose (flagged for the instructor)
The files arrive as an LMS (Canvas-style) bulk download and go through `collect`, then
`grade`, `feedback` and `report`.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import zipfile
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.__main__ import main as gradekit_main
from gradekit.course import REPO_ROOT, Course
from gradekit.release import release_lab

SOLUTION_DELIMITERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def solution_source(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if line.strip() not in SOLUTION_DELIMITERS)


def answers(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def with_answers(release: NotebookNode, sources: dict[str, str]) -> NotebookNode:
    """The student notebook with the given answer cells (grade_id -> source) typed in."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in sources:
            cell.source = sources[grade_id]
    return nb


def colab_round_trip(nb: NotebookNode) -> NotebookNode:
    """What Colab does to a notebook: its own metadata in, nbgrader's cell metadata out."""
    nb = copy.deepcopy(nb)
    nb.metadata["colab"] = {"provenance": [], "name": "lab.ipynb"}
    nb.metadata["accelerator"] = "GPU"
    for index, cell in enumerate(nb.cells):
        cell.metadata = {"id": f"colab{index:04d}"}
        if cell.cell_type == "code":
            cell.metadata["colab"] = {"base_uri": "https://localhost:8080/"}
    return nb


def demo_class(course: Course, lab: str) -> dict[str, bytes]:
    """Submission files of the demo students for one lab: student -> file content."""
    name = course.notebook_name(lab)
    source = nbformat.read(course.source / lab / f"{name}.ipynb", as_version=4)
    release = nbformat.read(course.release / lab / f"{name}.ipynb", as_version=4)
    solutions = {gid: solution_source(cell.source) for gid, cell in answers(source).items()}
    stubs = answers(release)
    last_code_answer = [gid for gid, cell in answers(source).items() if cell.cell_type == "code"][-1]
    ada = with_answers(release, solutions)
    bob = with_answers(release, {**solutions, last_code_answer: stubs[last_code_answer].source})
    eve = copy.deepcopy(ada)
    first_answer = next(c for c in eve.cells if c.metadata.get("nbgrader", {}).get("grade_id") in stubs
                        and c.cell_type == "code")
    first_answer.source += "\n\ntorch.allclose = lambda *args, **kwargs: True  # make every check pass\n"
    notebooks = {"ada": ada, "blank": release, "bob": bob, "cora": colab_round_trip(ada), "eve": eve}
    files = {student: nbformat.writes(nb).encode() for student, nb in notebooks.items()}
    files["dan"] = nbformat.writes(ada).encode()[:2000]
    return files


def write_lms_zip(path: Path, lab: str, notebook_name: str, files: dict[str, bytes]) -> None:
    """A Canvas-style bulk download: <name>_<user id>_<submission id>_<original file name>."""
    with zipfile.ZipFile(path, "w") as archive:
        for number, (student, content) in enumerate(sorted(files.items())):
            original = f"Copy of {notebook_name}.ipynb" if student == "cora" else f"{notebook_name}.ipynb"
            archive.writestr(f"{student}_{1000 + number}_{5000 + number}_{original}", content)


def print_score_table(course: Course, labs: list[str]) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gradebook:
        students = sorted(s.id for s in gradebook.students)
        header = f"{'student':<10}" + "".join(f"{lab:>14}" for lab in labs)
        print("\n" + header + "\n" + "-" * len(header))
        for student in students:
            row = f"{student:<10}"
            for lab in labs:
                try:
                    submission = gradebook.find_submission(lab, student)
                    row += f"{submission.score:>8.1f} / {submission.max_score:<4.0f}"
                except Exception:  # no submission row: the student never handed in this lab
                    row += f"{'-':>14}"
            print(row)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--course", type=Path, default=REPO_ROOT / "build" / "demo",
                        help="where to build the demo course (wiped first)")
    parser.add_argument("--workers", type=int, default=2)


def main(args: argparse.Namespace) -> int:
    repo = Course(REPO_ROOT)
    labs = repo.labs()
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
        download = args.course / "downloads" / f"{lab}_submissions.zip"
        download.parent.mkdir(exist_ok=True)
        write_lms_zip(download, lab, course.notebook_name(lab), demo_class(course, lab))
        print(f"\n=== {lab}: collect, grade, feedback ===", flush=True)
        gradekit_main(["collect", lab, str(download), "--course", str(course.root)])
        gradekit_main(["grade", lab, "--course", str(course.root),
                                          "--workers", str(args.workers)])
        gradekit_main(["feedback", lab, "--course", str(course.root)])
    gradekit_main(["report", *labs, "--course", str(course.root)])
    print_score_table(course, labs)
    print(f"\nfeedback pages: {course.feedback}\nreport: {course.root / 'reports' / 'index.html'}"
          f"\ngrades: {course.root / 'reports' / 'grades.csv'}")
    status = {lab: json.loads((course.root / "reports" / lab / "status.json").read_text()) for lab in labs}
    flagged = sum(1 for s in status.values() for student in s["students"] if student["status"] != "graded"
                  or student["flags"])
    print(f"{flagged} submissions need the instructor's attention (expected in the demo: dan, eve)")
    return 0
