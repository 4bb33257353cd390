"""similarity: pairs of students whose answer cells look alike, after the starter code and the lectures are removed.

Small courses built in tmp_path (a release notebook, a lecture notebook, submitted/<student>/<lab>/): no nbgrader
run, no gradebook (the report never reads or writes one)."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gradekit.authoring.notebooks import answer, code, readonly
from gradekit.authoring.notebooks import tests as locked_tests
from gradekit.commands import main as gradekit_main
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.delivery import similarity
from gradekit.delivery.similarity import (
    MIN_FINGERPRINTS,
    cell_score,
    fingerprints,
    normalised_tokens,
    write_similarity,
)

LAB = "lab9"
NOTEBOOK = "lab9_training"

# The starter code of each answer cell, as released: enough given code to be flagged if it were not removed.
TRAIN_STUB = '''
def train(x, y, epochs=100, lr=0.1):
    """Train a logistic regression by gradient descent; return w, b and the loss of every epoch."""
    n, d = x.shape
    losses = []
    # YOUR CODE HERE
    raise NotImplementedError()
'''
ACCURACY_STUB = '''
def accuracy(probabilities, labels, cutoff=0.5):
    """The share of samples whose predicted class (probability >= cutoff) equals the label."""
    if probabilities.shape != labels.shape:
        raise ValueError(f"shapes differ: {tuple(probabilities.shape)} and {tuple(labels.shape)}")
    # YOUR CODE HERE
    raise NotImplementedError()
'''
LECTURE = '''
def fit(features, targets, steps=500, step_size=0.05):
    weights = torch.zeros(features.shape[1], 1, requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weights, bias], lr=step_size)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(features @ weights + bias, targets)
        loss.backward()
        optimizer.step()
    return weights.detach(), bias.detach()
'''

# Gradient descent written out, vectorised.
ALICE = '''
def train(x, y, epochs=100, lr=0.1):
    """Train a logistic regression by gradient descent; return w, b and the loss of every epoch."""
    n, d = x.shape
    losses = []
    w = torch.zeros(d, 1)
    b = torch.zeros(1)
    for epoch in range(epochs):
        z = x @ w + b
        p = torch.sigmoid(z)
        loss = -(y * torch.log(p + 1e-7) + (1 - y) * torch.log(1 - p + 1e-7)).mean()
        grad_w = x.T @ (p - y) / n
        grad_b = (p - y).mean()
        w = w - lr * grad_w
        b = b - lr * grad_b
        losses.append(loss.item())
    return w, b, losses
'''
# Alice's answer with every variable renamed, independent statements swapped, comments added and changed,
# the docstring rewritten, and an HTML injection attempt in a comment and a string.
BOB = '''
def train(x, y, epochs=100, lr=0.1):
    """My training loop. </pre><script>alert("bob")</script>"""
    n, d = x.shape
    losses = []
    bias = torch.zeros(1)          # the bias first </pre><script>alert(1)</script>
    weights = torch.zeros(d, 1)
    for step in range(epochs):
        logits = x @ weights + bias
        probs = torch.sigmoid(logits)
        # binary cross-entropy, averaged <img src=x onerror=alert(2)>
        cost = -(y * torch.log(probs + 1e-6) + (1 - y) * torch.log(1 - probs + 1e-6)).mean()
        gb = (probs - y).mean()
        gw = x.T @ (probs - y) / n
        bias = bias - lr * gb
        weights = weights - lr * gw
        losses.append(cost.item())
    label = "<b>done</b>"
    return weights, bias, losses
'''
# The same function, another correct style: a loop over the samples, plain floats.
CAROL = '''
def train(x, y, epochs=100, lr=0.1):
    """Train a logistic regression by gradient descent; return w, b and the loss of every epoch."""
    n, d = x.shape
    losses = []
    weights = [0.0] * d
    bias = 0.0
    for _ in range(epochs):
        grad_w = [0.0] * d
        grad_b = 0.0
        total = 0.0
        for i in range(n):
            row = x[i].tolist()
            z = sum(wj * xj for wj, xj in zip(weights, row)) + bias
            p = 1.0 / (1.0 + math.exp(-z))
            target = float(y[i])
            total += -(target * math.log(p + 1e-7) + (1 - target) * math.log(1 - p + 1e-7))
            for j in range(d):
                grad_w[j] += (p - target) * row[j]
            grad_b += p - target
        weights = [wj - lr * gj / n for wj, gj in zip(weights, grad_w)]
        bias -= lr * grad_b / n
        losses.append(total / n)
    return torch.tensor(weights).reshape(d, 1), torch.tensor([bias]), losses
'''
# The lecture's autograd loop, copied as it is by two students who did not talk to each other.
FROM_LECTURE = '''
def train(x, y, epochs=100, lr=0.1):
    n, d = x.shape
    losses = []
    weights = torch.zeros(x.shape[1], 1, requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([weights, bias], lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ weights + bias, y)
        loss.backward()
        optimizer.step()
    return weights.detach(), bias.detach(), losses
'''
# The one-line answer everyone writes: too short to tell copying from the obvious answer, never compared.
ACCURACY = ACCURACY_STUB.replace("    # YOUR CODE HERE\n    raise NotImplementedError()\n",
                                 "    return ((probabilities >= cutoff).float() == labels).float().mean().item()\n")


def release_cells() -> list:
    return [readonly("imports", "import math\nimport torch\nimport torch.nn.functional as F"),
            answer("train", TRAIN_STUB), locked_tests("test_train", 2, "assert callable(train)"),
            answer("accuracy", ACCURACY_STUB), locked_tests("test_accuracy", 1, "assert callable(accuracy)")]


def notebook(cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = copy.deepcopy(cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def make_course(root: Path) -> Course:
    """A released lab with two answer cells and one lecture notebook; no submission yet."""
    release = root / "release" / LAB
    release.mkdir(parents=True)
    nbformat.write(notebook(release_cells()), release / f"{NOTEBOOK}.ipynb")
    (root / "notebooks").mkdir()
    nbformat.write(notebook([code("import torch"), code(LECTURE)]), root / "notebooks" / "L01_lecture.ipynb")
    return Course(root)


def submit(course: Course, student: str, train: str = TRAIN_STUB, accuracy: str = ACCURACY_STUB) -> Path:
    """The student's copy of the release (same cells, same cell ids) with their answers in the two answer cells."""
    nb = nbformat.read(course.release / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    answers = {"train": train, "accuracy": accuracy}
    for cell in nb.cells:
        cell.source = answers.get(cell.metadata["nbgrader"]["grade_id"], cell.source).strip("\n")
    path = course.submitted / student / LAB / f"{NOTEBOOK}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def course(tmp_path: Path) -> Course:
    return make_course(tmp_path / "course")


def pairs_of(report) -> dict[tuple[str, str], list[str]]:
    return {(p.student_a, p.student_b): [grade_id for grade_id, _ in p.cells] for p in report.pairs}


def own_prints(source: str, stub: str = TRAIN_STUB) -> frozenset[int]:
    """A cell's fingerprints without the starter code and the lecture, as the report computes them."""
    return fingerprints(source) - fingerprints(stub, every_kgram=True) - fingerprints(LECTURE, every_kgram=True)


# ---------------------------------------------------------------- the measure


def test_names_numbers_strings_comments_and_docstrings_do_not_count():
    one = 'def f(a, b):\n    """Add."""\n    total = a + b  # sum\n    return total * 2, "x"\n'
    two = "def g(x, y):\n    # the same, renamed\n    s = x + y\n    return s * 7, 'other'\n"
    assert normalised_tokens(one) == normalised_tokens(two)
    assert "V" in normalised_tokens(one) and "return" in normalised_tokens(one)
    assert normalised_tokens("print(len(x))") == ["print", "(", "len", "(", "V", ")", ")", ";"]  # builtins kept
    assert normalised_tokens("%matplotlib inline\nx = (1,") == ["V", "=", "(", "N", ","]  # drafts do not crash


def test_fingerprints_are_the_same_in_every_run():
    # Python's str hash is salted per process: winnowing on it would pick other fingerprints in every run.
    script = ("import sys; from gradekit.delivery.similarity import fingerprints; "
              "print(sorted(fingerprints(sys.stdin.read())))")
    run = subprocess.run([sys.executable, "-c", script], input=ALICE, capture_output=True, text=True, check=True,
                         cwd=REPO_ROOT, env={**os.environ, "PYTHONHASHSEED": "1"}, timeout=120)
    assert run.stdout == f"{sorted(fingerprints(ALICE))}\n"


def test_a_disguised_copy_is_flagged_above_the_threshold(course):
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "bob", BOB, ACCURACY)
    report = write_similarity(course, LAB)
    assert report.threshold == 0.8 and report.students == 2
    assert cell_score(own_prints(ALICE), own_prints(BOB)) >= 0.8
    assert pairs_of(report) == {("alice", "bob"): ["train"]}
    assert 0 < len(own_prints(ACCURACY, ACCURACY_STUB)) < MIN_FINGERPRINTS  # the same one-liner: not compared
    assert report.pairs[0].score >= 0.8


def test_students_who_only_kept_the_starter_code_are_not_flagged(course):
    # Without removing the starter code, their cells would be identical and long enough to compare.
    assert len(fingerprints(TRAIN_STUB)) >= MIN_FINGERPRINTS and len(fingerprints(ACCURACY_STUB)) >= MIN_FINGERPRINTS
    assert own_prints(TRAIN_STUB) == frozenset()
    submit(course, "dave")
    submit(course, "erin")
    submit(course, "alice", ALICE, ACCURACY)
    report = write_similarity(course, LAB)
    assert report.students == 3 and report.pairs == []


def test_code_from_the_lecture_is_not_evidence(course):
    assert len(fingerprints(FROM_LECTURE) - fingerprints(TRAIN_STUB, every_kgram=True)) >= 2 * MIN_FINGERPRINTS
    submit(course, "frank", FROM_LECTURE, ACCURACY)
    submit(course, "grace", FROM_LECTURE, ACCURACY)
    assert write_similarity(course, LAB).pairs == []


def test_an_honest_pair_in_different_styles_stays_below_the_threshold(course):
    alice, carol = own_prints(ALICE), own_prints(CAROL)
    assert min(len(alice), len(carol)) >= MIN_FINGERPRINTS  # both are compared
    assert cell_score(alice, carol) < 0.5
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "carol", CAROL, ACCURACY)
    assert write_similarity(course, LAB).pairs == []


def test_the_threshold_comes_from_course_toml_and_is_checked(course):
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "bob", BOB, ACCURACY)
    score = write_similarity(course, LAB).pairs[0].score
    (course.root / "course.toml").write_text("[similarity]\nthreshold = 1.0\n")
    report = write_similarity(course, LAB)
    assert report.threshold == 1.0 and (report.pairs == [] or score == 1.0)
    assert write_similarity(course, LAB, threshold=0.5).pairs  # an explicit threshold wins
    (course.root / "course.toml").write_text("[similarity]\nthreshold = 80\n")
    assert gradekit_main(["similarity", LAB, "--course", str(course.root)]) == 2


# ---------------------------------------------------------------- the files


def test_the_csv_lists_flagged_pairs_ranked(course):
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "bob", BOB, ACCURACY)
    submit(course, "carol", CAROL, ACCURACY)
    submit(course, "zoe", ALICE, ACCURACY)  # an exact copy of alice: 1.0, ranked first
    report = write_similarity(course, LAB)
    assert report.csv == course.root / "reports" / LAB / "similarity.csv"
    with report.csv.open(newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["student_a", "student_b", "score", "cells"]
    assert [row[:2] for row in rows[1:]] == [["alice", "zoe"], ["alice", "bob"], ["bob", "zoe"]]
    assert rows[1][2:] == ["1.000", "train"]
    scores = [float(row[2]) for row in rows[1:]]
    assert scores == sorted(scores, reverse=True) and all(0.8 <= s <= 1 for s in scores)


def test_student_text_is_escaped_in_the_page(course):
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "bob", BOB, ACCURACY)
    page = write_similarity(course, LAB).html.read_text()
    assert "<script" not in page and "<img" not in page and "<b>done" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert page.count("<pre") == 2  # the flagged cell of both students, side by side; nothing else


def test_unreadable_and_huge_submissions_are_skipped(course, monkeypatch):
    monkeypatch.setattr(similarity, "MAX_NOTEBOOK_BYTES", 400_000)
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "bob", BOB, ACCURACY)
    garbage = course.submitted / "mallory" / LAB / f"{NOTEBOOK}.ipynb"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 not a notebook")
    nested = course.submitted / "nina" / LAB / f"{NOTEBOOK}.ipynb"
    nested.parent.mkdir(parents=True)
    nested.write_text("[" * 200_000)
    huge = course.submitted / "hugo" / LAB / f"{NOTEBOOK}.ipynb"
    huge.parent.mkdir(parents=True)
    huge.write_text(" " * 500_000)
    long_cell = submit(course, "olga", "x = 1\n" * 17_000, ACCURACY)  # one cell over 100 000 characters
    odd = submit(course, "otto", ALICE, ACCURACY)  # cells whose fields have the wrong types
    data = json.loads(odd.read_text())
    data["cells"] += [{"cell_type": "code", "metadata": {"nbgrader": "x"}, "source": 5},
                      {"cell_type": "code", "metadata": {"nbgrader": {"solution": True, "grade_id": ["a"]}}},
                      {"cell_type": "code", "metadata": {"nbgrader": {"solution": True, "grade_id": "train"}},
                       "source": [1, 2]}]
    odd.write_text(json.dumps(data))
    bad_id = course.submitted / "=1+2 <img src=x>" / LAB / f"{NOTEBOOK}.ipynb"
    bad_id.parent.mkdir(parents=True)
    bad_id.write_text(long_cell.read_text())
    colab = submit(course, "colab", ALICE)  # Colab dropped the nbgrader metadata, kept the cell ids
    data = json.loads(colab.read_text())
    for cell in data["cells"]:
        cell["metadata"].pop("nbgrader")
    colab.write_text(json.dumps(data))
    blank = submit(course, "blank")
    data = json.loads(blank.read_text())
    data["cells"] = [cell for cell in data["cells"] if cell["metadata"]["nbgrader"]["grade_id"] == "imports"]
    blank.write_text(json.dumps(data))
    report = write_similarity(course, LAB)
    skipped = "\n".join(report.skipped)
    for student in ("mallory", "nina", "hugo", "olga", "=1+2", "blank"):
        assert sum(line.startswith(student) for line in report.skipped) == 1, skipped
    assert "olga: cell train skipped" in skipped and "blank: no answer cell" in skipped
    assert report.students == 5  # alice, bob, olga (her other cell), otto, colab
    assert pairs_of(report) == {pair: ["train"] for pair in [("alice", "bob"), ("alice", "colab"), ("alice", "otto"),
                                                             ("bob", "colab"), ("bob", "otto"), ("colab", "otto")]}
    page = report.html.read_text()
    assert "&lt;img src=x&gt;" in page and "<img" not in page  # the folder name, in the list of what was skipped


def test_the_command_exits_0_and_says_where_it_wrote(course, capsys):
    submit(course, "alice", ALICE, ACCURACY)
    submit(course, "bob", BOB, ACCURACY)
    broken = course.submitted / "mallory" / LAB / f"{NOTEBOOK}.ipynb"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    assert gradekit_main(["similarity", LAB, "--course", str(course.root)]) == 0
    out, err = capsys.readouterr()
    csv_path, html_path = similarity.similarity_files(course, LAB)
    assert f"wrote {csv_path} and {html_path}" in out and "1 pair(s) at or above 0.8" in out
    assert csv_path.is_file() and html_path.is_file()
    assert err.count("\n") == 1 and "mallory: not a readable notebook" in err
    assert gradekit_main(["similarity", "lab0", "--course", str(course.root)]) == 2  # not released
    with pytest.raises(SystemExit) as refused:  # argparse refuses it
        gradekit_main(["similarity", LAB, "--course", str(course.root), "--threshold", "0"])
    assert refused.value.code == 2
