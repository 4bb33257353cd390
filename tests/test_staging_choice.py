"""A submission folder placed by hand (not by `collect`): the notebook graded is the one collect would take."""

from __future__ import annotations

import os
import tracemalloc

import nbformat
import pytest
from submissions.tiny_lab import LAB, NOTEBOOK, build_tiny_course, release_notebook, solved_notebook

from gradekit.course.cells import is_answer_cell
from gradekit.course.ledger import MAX_STAGED_FILES, submission_digest
from gradekit.course.status import Status
from gradekit.staging.sanitize import choose_notebook, stage


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return build_tiny_course(tmp_path_factory.mktemp("staging") / "course")


def test_an_edited_copy_beats_the_untouched_stub_named_for_the_lab(course, tmp_path):
    folder = course.submitted / "ada" / LAB
    folder.mkdir(parents=True)
    nbformat.write(release_notebook(course), folder / f"{NOTEBOOK}.ipynb")  # the stub, under the lab's name
    nbformat.write(solved_notebook(course), folder / f"Copy of {NOTEBOOK}.ipynb")
    os.utime(folder / f"{NOTEBOOK}.ipynb", (2_000_000_000, 2_000_000_000))  # the stub is even the newer file
    status = stage(course, LAB, "ada", tmp_path, release_notebook(course))
    assert status.status == Status.GRADED
    assert any(f"graded Copy of {NOTEBOOK}.ipynb" in line and "unchanged copies" in line for line in status.repairs)
    staged = nbformat.read(tmp_path / "submitted" / "ada" / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    answers = "".join(c.source for c in staged.cells if is_answer_cell(c))
    assert answers and "raise NotImplementedError" not in answers


def test_a_notebook_one_folder_too_deep_is_reported_where_it_is(course, tmp_path):
    folder = course.submitted / "bob" / LAB / "work"
    folder.mkdir(parents=True)
    nbformat.write(solved_notebook(course), folder / f"{NOTEBOOK}.ipynb")
    status = stage(course, LAB, "bob", tmp_path, release_notebook(course))
    assert status.status == Status.INVALID
    assert f"found work/{NOTEBOOK}.ipynb in a folder below" in status.reason


def sparse_file(path, megabytes: int) -> None:
    """A file of that size that takes no disk (its contents are a hole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        stream.truncate(megabytes * 2**20)


def test_a_dataset_beside_the_notebook_is_left_out_said_and_the_notebook_graded(course, tmp_path):
    folder = course.submitted / "dora" / LAB
    folder.mkdir(parents=True)
    sparse_file(folder / "data" / "big.bin", 600)  # more than a sandbox's disk: it crashed the notebook before
    for name in ("a.bin", "b.bin", "c.bin"):
        sparse_file(folder / "parts" / name, 99)  # each small enough, not all three together
    (folder / "data" / "small.csv").write_text("x\n1\n")
    nbformat.write(solved_notebook(course), folder / f"{NOTEBOOK}.ipynb")  # sorts after "data/": staged first anyway
    status = stage(course, LAB, "dora", tmp_path, release_notebook(course))
    assert status.status == Status.GRADED
    note, = [line for line in status.repairs if line.startswith("left out of grading")]
    assert "data/big.bin (600 MB: a file may have 100 MB)" in note
    assert "parts/c.bin (99 MB: the folder may have 256 MB)" in note and "a.bin" not in note
    staged = tmp_path / "submitted" / "dora" / LAB
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == \
        sorted([f"{NOTEBOOK}.ipynb", "data/small.csv", "parts/a.bin", "parts/b.bin"])
    # The ledger's digest of the submission is over what is graded: the grade stays current.
    assert status.input_digest == submission_digest(folder)


def test_thousands_of_files_do_not_push_the_notebook_out(course, tmp_path):
    folder = course.submitted / "emil" / LAB
    for index in range(MAX_STAGED_FILES + 50):
        path = folder / "a-cache" / f"{index:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    nbformat.write(solved_notebook(course), folder / f"{NOTEBOOK}.ipynb")
    status = stage(course, LAB, "emil", tmp_path, release_notebook(course))
    assert status.status == Status.GRADED, status.reason
    assert (tmp_path / "submitted" / "emil" / LAB / f"{NOTEBOOK}.ipynb").is_file()
    assert any(f"more than {MAX_STAGED_FILES} files" in line for line in status.repairs)
    assert len(list((tmp_path / "submitted" / "emil" / LAB).rglob("*.txt"))) == MAX_STAGED_FILES - 1


def test_choosing_a_notebook_reads_no_more_than_a_notebook_may_have(course, tmp_path):
    canonical = tmp_path / f"{NOTEBOOK}.ipynb"
    nbformat.write(release_notebook(course), canonical)
    sparse_file(tmp_path / f"Copy of {NOTEBOOK}.ipynb", 400)
    tracemalloc.start()
    try:
        choose_notebook([canonical, tmp_path / f"Copy of {NOTEBOOK}.ipynb"], canonical, release_notebook(course))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300 * 2**20  # at most a notebook's bound read and decoded; the whole file alone is 400 MB
