"""`demo`: release the labs, then grade a small demo class end to end, as an instructor would.

The demo class lives in its own course directory (build/demo, with its own gradebook), so
it never mixes with real grades in the repository root. Per lab it has:
  ada    the instructor's solution, typed into the student notebook
  blank  the untouched student notebook
  bob    one function wrong (the last answer cell of the lab)
  cora   ada's notebook after a Colab round trip: nbgrader metadata lost, Colab metadata added
  dan    a damaged file (truncated JSON)
  eve    a correct notebook that also monkeypatches torch.allclose (flagged for the instructor)
The files arrive as an LMS bulk download, named as the LMS's own code names them (the second lab's
from Moodle 4.1+ with its grading worksheet, the others from Canvas), and go through `collect`, then
`grade`, `feedback`, `report` and the grade files for the LMS (`lms grades`, at the LMS's scale).
"""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import NBGRADER_DEFAULTS, Delimiters, grade_id_of, is_answer_cell
from gradekit.course.collected import load_state
from gradekit.course.directory import Course
from gradekit.course.status import Status, StudentStatus
from gradekit.course.status import read_status as status_file


def solution_source(source: str, delimiters: Delimiters = NBGRADER_DEFAULTS) -> str:
    return delimiters.without_delimiters(source)


def answers(nb: NotebookNode) -> dict[str, NotebookNode]:
    return {grade_id_of(c): c for c in nb.cells if is_answer_cell(c)}


def with_answers(release: NotebookNode, sources: dict[str, str]) -> NotebookNode:
    """The student notebook with the given answer cells (grade_id -> source) typed in."""
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        grade_id = grade_id_of(cell)
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
    solutions = {gid: solution_source(cell.source, Delimiters.of(course)) for gid, cell in answers(source).items()}
    stubs = answers(release)
    last_code_answer = [gid for gid, cell in answers(source).items() if cell.cell_type == "code"][-1]
    ada = with_answers(release, solutions)
    bob = with_answers(release, {**solutions, last_code_answer: stubs[last_code_answer].source})
    eve = copy.deepcopy(ada)
    first_answer = next(c for c in eve.cells if grade_id_of(c) in stubs
                        and c.cell_type == "code")
    first_answer.source += "\n\ntorch.allclose = lambda *args, **kwargs: True  # make every check pass\n"
    notebooks = {"ada": ada, "blank": release, "bob": bob, "cora": colab_round_trip(ada), "eve": eve}
    files = {student: nbformat.writes(nb).encode() for student, nb in notebooks.items()}
    files["dan"] = nbformat.writes(ada).encode()[:2000]
    return files


def write_lms_zip(path: Path, lab: str, notebook_name: str, files: dict[str, bytes], lms: str = "canvas") -> None:
    """A bulk download named as the LMS's own code names it: Canvas (`lib/content_zipper.rb`):
    `<name>_<user id>_<attachment id>_<file>`; Moodle 4.1+ (`mod/assign/classes/downloader.php`, folders):
    `<Full Name>_<participant id>_assignsubmission_file/<file>`."""
    with zipfile.ZipFile(path, "w") as archive:
        for number, (student, content) in enumerate(sorted(files.items())):
            original = f"Copy of {notebook_name}.ipynb" if student == "cora" else f"{notebook_name}.ipynb"
            if lms == "moodle":
                archive.writestr(f"{student.title()}_{MOODLE_FIRST + number}_assignsubmission_file/{original}", content)
            else:
                archive.writestr(f"{student}_{1000 + number}_{5000 + number}_{original}", content)


MOODLE_FIRST = 2000  # the demo's Moodle participant numbers
MOODLE_MAXIMUM = "10.00"  # the demo Moodle assignment is out of 10: grades are scaled to it


CANVAS_POINTS = "10"  # the demo Canvas assignments are out of 10 as well


def write_canvas_export(path: Path, students: list[str], labs: list[str]) -> None:
    """The course's Canvas gradebook export (Grades > Export): a column `<title> (<assignment id>)` per lab
    and the "Points Possible" row, as `lib/gradebook_exporter.rb` writes them."""
    columns = [f"{lab.title()} ({900 + number})" for number, lab in enumerate(labs)]
    lines = [",".join(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", *columns]),
             ",".join(["    Points Possible", "", "", "", "", *([CANVAS_POINTS] * len(labs))])]
    for number, student in enumerate(sorted(students)):
        lines.append(",".join([student.title(), str(1000 + number), f"S{1000 + number}", student, "A",
                               *([""] * len(labs))]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_moodle_worksheet(path: Path, students: list[str]) -> None:
    """The assignment's grading worksheet as Moodle writes it (`mod/assign/gradingtable.php`, download mode)."""
    header = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
              "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
    lines = [",".join(header)]
    for number, student in enumerate(sorted(students)):
        lines.append(f"Participant {MOODLE_FIRST + number},{student.title()},{student}@example.edu,"
                     f"Submitted for grading,,{MOODLE_MAXIMUM},Yes,-,-,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_status(course: Course, lab: str) -> dict[str, StudentStatus]:
    """The grader's status per student, keyed by display name (students are graded under their LMS id)."""
    names = {student: (record.get("name") or student).lower() for student, record in load_state(course, lab).items()}
    # The demo's Canvas labs and its Moodle lab know the same people under each LMS's own id (a Moodle student is
    # the worksheet's e-mail): the other LMS's ids, missing from this lab by construction, are left out.
    return {names[student]: entry for student, entry in status_file(course, lab).students.items() if student in names}


def print_score_table(statuses: dict[str, dict[str, StudentStatus]]) -> None:
    labs = list(statuses)
    students = sorted({student for lab in labs for student in statuses[lab]})
    header = f"{'student':<10}" + "".join(f"{lab:>16}" for lab in labs)
    print("\n" + header + "\n" + "-" * len(header))
    for student in students:
        row = f"{student:<10}"
        for lab in labs:
            entry = statuses[lab].get(student)
            if entry is None:
                row += f"{'-':>16}"
            elif entry.score is None:
                row += f"{entry.status:>16}"
            else:
                row += f"{entry.score:>9.1f} / {entry.max_score:<4.0f}"
        print(row)


def autograded_points(course: Course, lab: str) -> float:
    """The points of the lab's autograded test cells (its written answers, graded by hand, apart)."""
    with course.open_gradebook() as gradebook:
        return sum(cell.max_score for notebook in gradebook.find_assignment(lab).notebooks
                   for cell in notebook.grade_cells if cell.cell_type == "code")


def demo_problems(statuses: dict[str, dict[str, StudentStatus]], autograded: dict[str, float]) -> list[str]:
    """What the demo class must show; anything else means the pipeline is broken. `autograded`: each lab's
    autograded points, all of which the instructor's solution (ada) must get."""
    problems = []
    for lab, status in statuses.items():
        ada, cora = status["ada"], status["cora"]
        expectations = {
            f"ada is graded with all {autograded[lab]:g} autograded points": ada.status == Status.GRADED
            and ada.score == autograded[lab],
            "blank scores 0": status["blank"].score == 0,
            "bob loses points but keeps some": 0 < status["bob"].score < ada.score,
            "cora (Colab round trip) is repaired and scores like ada": cora.score == ada.score
            and bool(cora.repairs),
            "dan (damaged file) is reported invalid": status["dan"].status == Status.INVALID,
            "eve (monkeypatching) is flagged": bool(status["eve"].flags),
        }
        problems += [f"{lab}: expected {what}" for what, ok in expectations.items() if not ok]
    return problems


