"""release/ is exactly what nbgrader makes from source/ today, and gives nothing away."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from gradekit.course.directory import REPO_ROOT, Course
from tests.conftest import build_course, fill_release

REPO = Course(REPO_ROOT)
LABS = REPO.labs()


def read(path):
    return nbformat.read(path, as_version=4)


def release_path(course: Course, lab: str):
    return course.release / lab / f"{REPO.notebook_name(lab)}.ipynb"


def comparable(nb) -> list[tuple]:
    return [(c.cell_type, c.source, dict(c.metadata), c.get("id")) for c in nb.cells]


def delimited_lines(source: str, begin: str, end: str) -> list[str]:
    """Lines inside begin/end delimiter pairs."""
    inside, lines = False, []
    for line in source.splitlines():
        if line.strip() == begin:
            inside = True
        elif line.strip() == end:
            inside = False
        elif inside:
            lines.append(line.strip())
    return lines


def outside_delimiters(source: str) -> list[str]:
    """Lines outside every solution and hidden-test region (what the student sees anyway)."""
    inside, lines = False, []
    for line in source.splitlines():
        if line.strip() in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
            inside = True
        elif line.strip() in ("### END SOLUTION", "### END HIDDEN TESTS"):
            inside = False
        elif not inside:
            lines.append(line.strip())
    return lines


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    return build_course(tmp_path_factory.mktemp("fresh") / "course")


@pytest.mark.parametrize("lab", LABS)
def test_release_is_fresh(lab, fresh_release):
    committed = sorted(p.name for p in (REPO.release / lab).iterdir())
    generated = sorted(p.name for p in (fresh_release.release / lab).iterdir())
    assert committed == generated, "release/ has other files than nbgrader makes: run `make release`"
    assert comparable(read(release_path(REPO, lab))) == comparable(read(release_path(fresh_release, lab))), (
        f"release/{lab} is stale: run `make release` and commit it")


@pytest.mark.parametrize("lab", LABS)
def test_release_has_no_solutions_hidden_tests_or_outputs(lab):
    source = read(REPO.source / lab / f"{REPO.notebook_name(lab)}.ipynb")
    released = read(release_path(REPO, lab))
    text = "\n".join(c.source for c in released.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    released_lines = {line.strip() for line in text.splitlines()}
    secret, public = set(), set()
    for cell in source.cells:
        hidden = (delimited_lines(cell.source, "### BEGIN SOLUTION", "### END SOLUTION")
                  + delimited_lines(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
        secret |= set(hidden)
        public |= set(outside_delimiters(cell.source))
    # Short or generic lines (`return y`, `)`) and lines that visible code has too may appear.
    for line in sorted(secret - public):
        if len(line) >= 25 and not line.startswith("#"):
            assert line not in released_lines, f"release/{lab} reveals: {line!r}"
    for cell in released.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"release/{lab} has outputs"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_untouched_release_fails_every_test_cell(lab, tmp_path):
    path = tmp_path / "student.ipynb"
    shutil.copy(release_path(REPO, lab), path)
    result = REPO.nbgrader("validate", "--invert", str(path), check=False)
    assert "Success!" in result.stdout, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_filled_release_passes_validation_alone_in_an_empty_folder(lab, tmp_path):
    """A student who writes the solutions passes nbgrader validate, with no file beside the notebook."""
    source = read(REPO.source / lab / f"{REPO.notebook_name(lab)}.ipynb")
    path = tmp_path / "student.ipynb"
    nbformat.write(fill_release(read(release_path(REPO, lab)), source), path)
    result = REPO.nbgrader("validate", str(path), check=False)
    assert "Success! Your notebook passes all the tests." in result.stdout, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.ipynb"], "the notebook wrote files"
    assert not re.search(r"open\(|read_csv|np\.load|torch\.load", "\n".join(c.source for c in source.cells))
