"""prepare_submission: Colab/LMS-damaged notebooks grade like clean ones, broken ones are rejected with a reason,
and tampering is flagged."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator
from submissions.broken import BROKEN, huge_outputs
from submissions.tiny_lab import LAB, NOTEBOOK, build_tiny_course, release_notebook, solution_text, solved_notebook
from submissions.transforms import TRANSFORMS, strip_nbgrader, write_all, write_submission

from gradekit.course.directory import REPO_ROOT, Course
from gradekit.staging.integrity import find_tampering, notebook_flags
from gradekit.staging.repair import InvalidSubmission, prepare_submission

pytestmark = pytest.mark.xdist_group("repair")  # one worker builds the tiny course once

GRADED_IDS = ["imports", "checks", "sigmoid", "test_sigmoid", "mean_std", "test_mean_std", "answer_why"]


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def tiny(tmp_path_factory) -> Course:
    return build_tiny_course(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")  # session: not rebuilt when xdist interleaves modules
def corpus(tiny: Course, tmp_path_factory) -> dict[str, Path]:
    return write_all(tiny, tmp_path_factory.mktemp("corpus"), solved_notebook(tiny))


def graded_cells(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transformed_submission_is_restored_to_the_release_structure(name, tiny, corpus):
    release = release_notebook(tiny)
    prepared = prepare_submission(corpus[name], release)
    nb = prepared.notebook
    assert graded_cells(nb) == GRADED_IDS  # release order, no duplicates, nothing missing
    MetadataValidator().validate_nb(nb)
    nbformat.validate(nb)
    by_id = {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
    for grade_id in ("sigmoid", "mean_std"):
        assert by_id[grade_id].cell_type == "code"
        assert by_id[grade_id].source.strip() == solution_text(grade_id).strip()
    # no leftover copy of a stub that would redefine a solved function after it
    assert not any("raise NotImplementedError" in c.source for c in nb.cells
                   if c.metadata.get("nbgrader", {}).get("grade_id") != "checks")  # the checks cell quotes it
    release_meta = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"] for c in release.cells
                    if "nbgrader" in c.metadata}
    assert {k: c.metadata["nbgrader"] for k, c in by_id.items()} == release_meta
    assert prepared.flags == []
    if name in ("untouched", "new_cell_ids", "colab_metadata", "nbformat_44"):
        assert prepared.repairs == [], f"{name}: lossless normalisations are not repairs"
    else:
        assert prepared.repairs, f"{name}: the repair must be reported"


def test_repairs_name_what_was_done(tiny, corpus):
    release = release_notebook(tiny)
    repairs = " | ".join(prepare_submission(corpus["combined_stripped"], release).repairs)
    assert "test cell 'test_sigmoid' was deleted" in repairs
    assert "readonly cell 'checks' was deleted" in repairs
    assert "unedited copy of answer cell 'mean_std'" in repairs
    assert "defined names): sigmoid, mean_std" in repairs
    edited = prepare_submission(corpus["edited_locked_cells"], release).repairs
    assert edited == ["test cell 'test_sigmoid' was edited by the student (it is locked); nbgrader grades "
                      "with the original"]
    moved = prepare_submission(corpus["reorder"], release).repairs
    assert any("moved test cell 'test_sigmoid'" in line for line in moved)
    duplicated = prepare_submission(corpus["duplicate_test_cell"], release).repairs
    assert any("duplicate of test cell 'test_mean_std'" in line for line in duplicated)


def test_two_edited_copies_keep_the_last_one_graded(tiny):
    release = release_notebook(tiny)
    nb = solved_notebook(tiny)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid")
    first = copy.deepcopy(nb.cells[index])
    first.source = "def sigmoid(z):\n    return z  # first try"
    first["id"] = "firsttry"
    nb.cells.insert(index, first)
    path = write_submission(nb, tiny.root / "two_copies.ipynb")
    prepared = prepare_submission(path, release)
    graded = [c for c in prepared.notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid"]
    assert len(graded) == 1 and graded[0].source == solution_text("sigmoid")
    assert any("first try" in c.source and "nbgrader" not in c.metadata for c in prepared.notebook.cells)
    assert any("appears 2 times" in line for line in prepared.repairs)


def test_submission_files_are_never_modified(tiny, corpus):
    release = release_notebook(tiny)
    before = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in corpus.items()}
    stats = {name: path.stat().st_mtime_ns for name, path in corpus.items()}
    for path in corpus.values():
        prepare_submission(path, release)
    assert before == {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in corpus.items()}
    assert stats == {name: path.stat().st_mtime_ns for name, path in corpus.items()}


def grading_fingerprint(nb) -> tuple:
    """What nbgrader's grading depends on: cell order, types, sources and nbgrader metadata."""
    return tuple((c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader"), sort_keys=True))
                 for c in nb.cells)


@pytest.mark.slow
def test_every_transformed_submission_grades_to_full_marks(tiny, corpus, tmp_path):
    """Through plain `nbgrader autograde`: every repaired transform gets 5/5 on the tests.

    Repaired notebooks with the same grading fingerprint grade identically, so one of each is
    graded (the combined Colab one first: it also carries Colab's metadata); controls show that
    without repair nbgrader loses the points and that a repaired wrong answer still loses them.
    """
    from nbgrader.api import Gradebook

    release = release_notebook(tiny)
    course = Course(tiny.root)

    def place(student: str, nb) -> None:
        target = course.submitted / student / LAB / f"{NOTEBOOK}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)

    representative: dict[tuple, str] = {}
    graded_as: dict[str, str] = {}
    for name in sorted(corpus, key=lambda n: (not n.startswith("combined"), n)):
        nb = prepare_submission(corpus[name], release).notebook
        key = grading_fingerprint(nb)
        if key not in representative:
            representative[key] = name
            place(name, nb)
        graded_as[name] = representative[key]
    assert len(representative) >= 3  # the corpus does produce different notebooks
    place("control_unrepaired", nbformat.read(corpus["strip_nbgrader"], as_version=4))
    wrong = strip_nbgrader(solved_notebook(tiny))
    for cell in wrong.cells:
        cell.source = cell.source.replace("torch.exp(-z)", "torch.exp(z)")
    place("control_wrong", prepare_submission(write_submission(wrong, tmp_path / "w.ipynb"), release).notebook)
    course.nbgrader("autograde", LAB, "--create")
    with Gradebook(course.db_url) as gradebook:
        def test_scores(student: str) -> dict[str, float]:
            notebook = gradebook.find_submission_notebook(NOTEBOOK, LAB, student)
            return {g.name: g.score for g in notebook.grades if g.name.startswith("test_")}

        full = {"test_sigmoid": 2.0, "test_mean_std": 3.0}
        for name, graded_name in graded_as.items():
            assert test_scores(graded_name) == full, f"{name} (graded as {graded_name})"
        assert test_scores("control_unrepaired") != full
        assert test_scores("control_wrong") == {"test_sigmoid": 0.0, "test_mean_std": 3.0}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_submission_is_rejected_with_its_reason(case, tiny, tmp_path):
    writer, words = BROKEN[case]
    path = tmp_path / f"{case}.ipynb"
    writer(solved_notebook(tiny), path)
    with pytest.raises(InvalidSubmission) as error:
        prepare_submission(path, release_notebook(tiny))
    for word in words:
        assert word in str(error.value), str(error.value)


def test_large_outputs_are_dropped_before_parsing(tiny, tmp_path):
    path = tmp_path / "printed_a_lot.ipynb"
    huge_outputs(solved_notebook(tiny), path, megabytes=12)
    prepared = prepare_submission(path, release_notebook(tiny))
    assert any("cell outputs before parsing" in line for line in prepared.repairs)
    assert all(c.get("outputs", []) == [] for c in prepared.notebook.cells)
    assert graded_cells(prepared.notebook) == GRADED_IDS


def test_extra_student_cells_stay_and_are_not_graded(tiny, tmp_path):
    nb = strip_nbgrader(solved_notebook(tiny))
    nb.cells.insert(5, nbformat.v4.new_code_cell("print(sigmoid(torch.tensor([1.0])))"))
    nb.cells.insert(5, nbformat.v4.new_markdown_cell("My notes: sigmoid squashes."))
    prepared = prepare_submission(write_submission(nb, tmp_path / "extra.ipynb"), release_notebook(tiny))
    assert graded_cells(prepared.notebook) == GRADED_IDS
    sources = [c.source for c in prepared.notebook.cells]
    assert "print(sigmoid(torch.tensor([1.0])))" in sources and "My notes: sigmoid squashes." in sources


# ---------------------------------------------------------------- tampering

TAMPERING = {
    "allclose": "torch.allclose = lambda *a, **k: True",
    "isclose_alias": "import torch as t\nt.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)",
    "tensor_eq": "torch.Tensor.__eq__ = lambda self, other: True",
    "builtins": "import builtins\nbuiltins.abs = lambda x: 0",
    "builtins_dunder": "__builtins__.isinstance = lambda *a: True",
    "def_check_tensor": "def check_tensor(*args, **kwargs):\n    return None",
    "assign_fail": "fail = lambda *a, **k: None",
    "class_checkfailed": "class CheckFailed(Exception):\n    pass",
    "setattr": "setattr(torch, 'isclose', lambda *a, **k: True)",
    "functional": "F.binary_cross_entropy = lambda p, y: torch.tensor(0.0)",
    "numpy": "import numpy as np\nnp.allclose = lambda *a, **k: True",
    "sklearn": "import sklearn.metrics\nsklearn.metrics.accuracy_score = lambda *a: 1.0",
    "vars": "vars(torch)['sigmoid'] = lambda z: z",
    "exec": "exec('torch.isclose = lambda *a, **k: True')",
    "eval": "sigmoid = eval('lambda z: 1 / (1 + torch.exp(-z))')",
    "delete": "del torch.isclose",
    "in_function": "def sigmoid(z):\n    torch.isclose = lambda *a, **k: True\n    return z",
}

INNOCENT = [
    "torch.manual_seed(0)\nnp.random.seed(0)",
    "torch.backends.cudnn.deterministic = True",
    "model = torch.nn.Linear(3, 1)\nmodel.weight.data = torch.zeros(1, 3)\nmodel.eval()",
    "x = torch.zeros(3)\nx[0] = 1.0\nresult = call_me = 3",
    "%matplotlib inline\n!pip list\nimport numpy as np\nmean = np.mean([1, 2])",
    "def helper(z):\n    return torch.sigmoid(z)\nchecked = check_tensor",
]


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_flagged(name):
    flags = find_tampering([("cell 5 (sigmoid)", TAMPERING[name])], ["import torch.nn.functional as F"])
    assert flags and flags[0].startswith("cell 5 (sigmoid), line"), flags


@pytest.mark.parametrize("source", INNOCENT)
def test_ordinary_code_is_not_flagged(source):
    assert find_tampering([("cell", source)], ["import torch\nimport numpy as np"]) == []


def test_prepare_submission_flags_a_patched_solution(tiny, tmp_path):
    nb = solved_notebook(tiny)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "sigmoid":
            cell.source += "\n\ntorch.allclose = lambda *a, **k: True"
    prepared = prepare_submission(write_submission(nb, tmp_path / "t.ipynb"), release_notebook(tiny))
    assert prepared.flags == ["cell 5 (sigmoid), line 5: rebinds `torch.allclose`"]


def test_instructor_notebooks_are_not_flagged(tiny):
    notebooks = [tiny.source / LAB / f"{NOTEBOOK}.ipynb"]
    repo = Course(REPO_ROOT)
    if repo.source.is_dir():
        notebooks += sorted(repo.source.glob("*/*.ipynb"))
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert notebook_flags(nb) == [], os.fspath(path)


def real_labs() -> list[tuple[Path, Path]]:
    repo = Course(REPO_ROOT)
    pairs = []
    for release in sorted(repo.release.glob("*/*.ipynb")) if repo.release.is_dir() else []:
        source = repo.source / release.parent.name / release.name
        if source.is_file():
            pairs.append((release, source))
    return pairs


def solved_from_source(release, source):
    """The release notebook with the instructor's solutions typed in (markers removed)."""
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if "nbgrader" in c.metadata}
    solved = copy.deepcopy(release)
    for cell in solved.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            lines = solutions[meta["grade_id"]].splitlines()
            cell.source = "\n".join(line for line in lines if "### BEGIN SOLUTION" not in line
                                    and "### END SOLUTION" not in line)
    return solved


@pytest.mark.parametrize("release_path,source_path", real_labs(), ids=lambda p: p.parent.name)
def test_real_lab_survives_a_colab_round_trip(release_path, source_path, tmp_path):
    """The course's own labs: metadata stripped, ids changed, Colab format -> the release structure again."""
    from submissions.transforms import colab_metadata, new_cell_ids

    release = nbformat.read(release_path, as_version=4)
    solved = solved_from_source(release, nbformat.read(source_path, as_version=4))
    nb = colab_metadata(new_cell_ids(strip_nbgrader(copy.deepcopy(solved))))
    prepared = prepare_submission(write_submission(nb, tmp_path / release_path.name), release)
    assert graded_cells(prepared.notebook) == graded_cells(release)
    assert [c.source for c in prepared.notebook.cells] == [c.source for c in solved.cells]
    assert prepared.flags == []
