"""One rule for the hidden tests, and it is nbgrader's: whatever the release hides never reaches the kernel.

nbgrader's `ClearHiddenTests` hides from a line that *contains* `begin_test_delimeter` (configurable,
default `BEGIN HIDDEN TESTS`). A lab written with another accepted spelling (`# BEGIN HIDDEN TESTS`, or a
course's own delimiter) must be hidden at release, at grading (the kernel, the student's files, the
feedback page) and by `publish`, everywhere through `gradekit.course.cells.Delimiters`.
"""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from submissions import tiny_lab
from submissions.tiny_lab import HIDDEN_SECRET, LAB, NOTEBOOK, solved_notebook

from gradekit.authoring.notebooks import code, write_notebook
from gradekit.authoring.publish import leaks
from gradekit.commands import main as gradekit_main
from gradekit.course.cells import NBGRADER_DEFAULTS, Delimiters
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.delivery.feedback import visible_source
from gradekit.judge.driver import kernel_notebook

CUSTOM = ("BEGIN SECRET CHECKS", "END SECRET CHECKS")
SPELLINGS = {
    # nbgrader's default delimiters, spelled with one '#': hidden by nbgrader, so hidden by us.
    "one-hash": (None, "# BEGIN HIDDEN TESTS", "# END HIDDEN TESTS"),
    # A course that configures its own delimiters (c.ClearHiddenTests.begin_test_delimeter).
    "configured": (CUSTOM, f"## {CUSTOM[0]} ##", f"## {CUSTOM[1]} ##"),
}
# A cell a student adds at the end: it looks for the hidden tests in everything the kernel has seen
# (IPython's input history) and in every file of its working directory.
PROBE = '''
import os
_seen = "\\n".join(In)
for _name in os.listdir("."):
    if os.path.isfile(_name):
        with open(_name, errors="replace") as _file:
            _seen += _file.read()
if "HIDDEN_SECRET" + "_7731" in _seen:  # nothing the kernel prints after the tests ran is kept: it dies
    os._exit(3)
'''


def _respelled(source: str, begin: str, end: str) -> str:
    return source.replace("### BEGIN HIDDEN TESTS", begin).replace("### END HIDDEN TESTS", end)


def _config(root, delimiters: tuple[str, str] | None) -> None:
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    if delimiters:
        with open(root / "nbgrader_config.py", "a") as config:
            config.write(f"\nc.ClearHiddenTests.begin_test_delimeter = {delimiters[0]!r}\n"
                         f"c.ClearHiddenTests.end_test_delimeter = {delimiters[1]!r}\n")


def test_delimiters_are_read_from_the_course_config(tmp_path):
    assert Delimiters.of(Course(REPO_ROOT)) == NBGRADER_DEFAULTS
    _config(tmp_path, CUSTOM)
    configured = Delimiters.of(Course(tmp_path))
    assert (configured.begin_hidden, configured.end_hidden) == CUSTOM
    assert configured.begin_solution == "BEGIN SOLUTION"  # what the config does not set stays nbgrader's


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_trusted_reader_hides_what_nbgrader_hides(tmp_path, spelling):
    setting, begin, end = SPELLINGS[spelling]
    _config(tmp_path, setting)
    delimiters = Delimiters.of(Course(tmp_path))
    source = _respelled(tiny_lab.SIGMOID_TESTS, begin, end)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])

    assert HIDDEN_SECRET not in kernel_notebook(nb, delimiters).cells[0].source
    assert HIDDEN_SECRET not in visible_source(source, delimiters)
    assert HIDDEN_SECRET in "\n".join(delimiters.hidden_lines(source))
    assert "check_tensor(\"sigmoid\", sigmoid(z)" in delimiters.strip_hidden(source)  # the visible check stays


@pytest.mark.slow
@pytest.mark.parametrize("spelling", SPELLINGS)
def test_another_spelling_never_reaches_the_kernel_the_files_or_the_release(tmp_path, spelling):
    setting, begin, end = SPELLINGS[spelling]
    root = tmp_path / "course"
    root.mkdir()
    _config(root, setting)
    cells = tiny_lab.source_cells()
    for cell in cells:
        cell.source = _respelled(cell.source, begin, end)
    assert any(begin in cell.source for cell in cells)
    write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", cells, title=LAB)
    course = Course(root)
    course.nbgrader("generate_assignment", LAB, "--force")

    release = (course.release / LAB / f"{NOTEBOOK}.ipynb").read_text()
    assert HIDDEN_SECRET not in release and begin.strip("# ") not in release
    assert leaks(course, {f"{LAB}/{NOTEBOOK}.ipynb": release.encode()}) == []
    assert leaks(course, {"leaked.py": f"{begin}\n{HIDDEN_SECRET} = 1\n".encode()})  # publish refuses it

    nb = solved_notebook(course)
    nb.cells.append(code(PROBE))
    target = course.submitted / "probe" / LAB / f"{NOTEBOOK}.ipynb"
    target.parent.mkdir(parents=True)
    nbformat.write(nb, target)
    assert gradekit_main(["grade", LAB, "--course", str(root), "--workers", "1", "--timeout", "120"]) == 0

    status = json.loads(course.status_file(LAB).read_text())["students"][0]
    assert (status["status"], status["score"]) == ("graded", 5.0)  # every test passed in the judge (written: by hand)
    graded = nbformat.read(course.autograded / "probe" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    assert isinstance(graded.cells[-1].execution_count, int)  # the probe ran, to the end: it found nothing

    assert gradekit_main(["feedback", LAB, "--course", str(root)]) == 0
    page = next((course.feedback / "probe" / LAB).glob("*.html")).read_text()
    assert HIDDEN_SECRET not in page
