"""gradekit.staging.isolated: repair in a child process, same result as in-process, hostile inputs cut off cleanly.

Fast: no notebook is executed and no nbgrader command runs; one worker process for the module.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from gradekit.course.directory import REPO_ROOT
from gradekit.staging import isolated as bounded
from gradekit.staging.isolated import prepare_submission_bounded
from gradekit.staging.repair import MAX_NOTEBOOK_BYTES, InvalidSubmission, prepare_submission

RELEASE = REPO_ROOT / "release" / "lab1" / "lab1_logistic_regression.ipynb"


@pytest.fixture(scope="module")
def release_path(tmp_path_factory) -> Path:
    """A private copy of lab1's release notebook (release/ may be regenerated while tests run)."""
    copy_path = tmp_path_factory.mktemp("release") / RELEASE.name
    if RELEASE.is_file():
        shutil.copyfile(RELEASE, copy_path)
    else:  # release/ is being regenerated: the committed one
        shown = subprocess.run(["git", "show", f"HEAD:{RELEASE.relative_to(REPO_ROOT)}"], cwd=REPO_ROOT,
                               capture_output=True)
        if shown.returncode != 0:
            pytest.skip("no release/lab1 notebook: run `python -m gradekit release`")
        copy_path.write_bytes(shown.stdout)
    return copy_path


@pytest.fixture(scope="module")
def release_nb(release_path):
    nb = nbformat.read(release_path, as_version=4)
    bounded.start_worker()  # ~1 s of imports, once, outside the timed calls
    yield nb
    bounded.stop_worker()


def fingerprint(path: Path) -> tuple:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_mtime_ns, stat.st_size


def bounded_call(path: Path, release_nb, **limits):
    """prepare_submission_bounded, checking that the submitted file is left exactly as it was."""
    before = fingerprint(path)
    try:
        return prepare_submission_bounded(path, release_nb, **limits)
    finally:
        assert fingerprint(path) == before


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def with_extra_cell(release_nb, tmp_path: Path, source: str, name: str) -> Path:
    nb = copy.deepcopy(release_nb)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_normal_submission_gives_the_same_result_as_in_process(release_nb, tmp_path):
    nb = copy.deepcopy(release_nb)
    answer = next(cell for cell in nb.cells if grade_id(cell) == "standardize")
    answer.source = "def standardize(x):\n    return (x - x.mean(0)) / x.std(0)\n"
    del answer.metadata["nbgrader"]  # as Colab does: repair must restore it
    path = tmp_path / "submission.ipynb"
    nbformat.write(nb, path)

    expected = prepare_submission(path, release_nb)
    got = bounded_call(path, release_nb)

    assert expected.repairs and got.repairs == expected.repairs
    assert got.flags == expected.flags
    assert got.notebook == expected.notebook
    assert json.dumps(got.notebook, sort_keys=True) == json.dumps(expected.notebook, sort_keys=True)
    assert isinstance(got.notebook, nbformat.NotebookNode)
    nbformat.validate(got.notebook)
    assert bounded_call(path, None).notebook == prepare_submission(path, None).notebook  # no release


def test_invalid_submission_in_the_child_keeps_its_message(release_nb, tmp_path):
    path = tmp_path / "latin1.ipynb"
    path.write_bytes(nbformat.writes(release_nb).encode() + "\n# caf\xe9".encode("latin-1"))
    with pytest.raises(InvalidSubmission) as in_process:
        prepare_submission(path, release_nb)
    with pytest.raises(InvalidSubmission) as child:
        bounded_call(path, release_nb)
    assert str(child.value) == str(in_process.value)
    with pytest.raises(InvalidSubmission, match="^missing: no notebook was submitted$"):
        prepare_submission_bounded(tmp_path / "absent.ipynb", release_nb)


def test_quadratic_matching_is_cut_off_at_the_deadline(release_nb, release_path, tmp_path):
    # The student deleted the checks cell and pasted 40 cells with its characters shuffled onto one line:
    # every one passes difflib's quick ratios against the release's checks cell, so by_content runs a
    # character-level SequenceMatcher (~0.5 s each) for each: minutes in-process (5 such cells: ~12 s).
    nb = copy.deepcopy(release_nb)
    checks = next(cell for cell in nb.cells if grade_id(cell) == "checks")
    nb.cells.remove(checks)
    chars, rng = list(checks.source.replace("\n", " ")), random.Random(0)
    for _ in range(40):
        rng.shuffle(chars)
        nb.cells.append(nbformat.v4.new_code_cell("".join(chars)))
    path = tmp_path / "slow.ipynb"
    nbformat.write(nb, path)
    assert path.stat().st_size < 1_000_000  # a small file (the cap is 100 MB), a slow repair

    start = time.monotonic()
    with pytest.raises(InvalidSubmission) as error:
        bounded_call(path, release_nb, timeout=1.0)
    assert time.monotonic() - start < 1.0 + 2.0
    assert str(error.value) == "repair took longer than 1 s: the notebook is too large or malformed"
    assert bounded_call(release_path, release_nb).repairs == []  # the worker is still fine afterwards


def test_memory_limit_is_an_invalid_submission_and_the_grader_does_not_grow(release_nb, tmp_path):
    # 40 MB of markdown text (not an output: repair only strips outputs) needs ~3 copies while parsing.
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("PLACEHOLDER"))
    head, tail = nbformat.writes(nb).encode().split(b"PLACEHOLDER")
    path = tmp_path / "big.ipynb"
    with open(path, "wb") as file:  # in chunks, so the test process itself stays small
        file.write(head)
        for _ in range(40):
            file.write(b"a" * 2**20)
        file.write(tail)
    rss_before = current_rss_mb()

    with pytest.raises(InvalidSubmission) as error:
        bounded_call(path, release_nb, memory_mb=256)

    assert str(error.value).startswith("repair needed more than 256 MB of memory")
    assert current_rss_mb() - rss_before < 8


def test_oversized_file_is_refused_before_any_process(release_nb, tmp_path):
    path = tmp_path / "huge.ipynb"
    with open(path, "wb") as file:
        file.truncate(MAX_NOTEBOOK_BYTES + 2**20)  # sparse: nothing is written
    before = fingerprint(path)
    start = time.monotonic()
    with pytest.raises(InvalidSubmission) as child:
        prepare_submission_bounded(path, release_nb)
    assert time.monotonic() - start < 0.1  # a stat(), no fork, no read
    assert fingerprint(path) == before
    with pytest.raises(InvalidSubmission) as in_process:
        prepare_submission(path, release_nb)
    assert str(child.value) == str(in_process.value)


def test_deeply_nested_json_is_invalid_without_recursion_error(release_nb, tmp_path):
    path = tmp_path / "nested.ipynb"
    path.write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": '
                    + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InvalidSubmission, match="nested too deeply"):
        bounded_call(path, release_nb)
    # Shallow enough for json, too deep for nbformat: in-process this is a RecursionError.
    path = tmp_path / "nested_metadata.ipynb"
    path.write_text('{"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {"x": '
                    + "[" * 950 + "]" * 950 + "}}")
    with pytest.raises(InvalidSubmission, match="nested too deeply"):
        bounded_call(path, release_nb)


def test_code_that_crashes_the_python_parser_is_invalid(release_nb, tmp_path, capfd):
    # ast.parse raises RecursionError / MemoryError on these: in-process they escape repair.
    deep_not = with_extra_cell(release_nb, tmp_path, "x = " + "not " * 5000 + "1", "not.ipynb")
    with pytest.raises(RecursionError):
        prepare_submission(deep_not, release_nb)
    with pytest.raises(InvalidSubmission, match="nested too deeply"):
        bounded_call(deep_not, release_nb)
    deep_minus = with_extra_cell(release_nb, tmp_path, "x = " + "-" * 100_000 + "1", "minus.ipynb")
    with pytest.raises(InvalidSubmission, match="ran out of memory at .*nested too deeply"):
        bounded_call(deep_minus, release_nb)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


def test_any_other_crash_is_one_line_without_traceback(release_nb, release_path, capfd):
    broken_release = nbformat.from_dict({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                         "cells": [{"cell_type": "code", "source": None, "metadata": {}}]})  # bug input
    with pytest.raises(InvalidSubmission) as error:
        bounded_call(release_path, broken_release)
    assert str(error.value).startswith("repair failed (AttributeError")
    assert "\n" not in str(error.value)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
