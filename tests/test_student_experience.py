"""What a student meets: labs that cannot be copied from the lectures, hints that teach without the code,
an untouched notebook that says what to do, notebooks that stay fast and warning-free."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess

import nbformat
import pytest

from gradekit.authoring.publish import load_settings, student_tree
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.sandbox.runtime import course_runtime
from tests.conftest import NOTEBOOK_WARNINGS, execute_notebook, fill_release, solution_text

REPO = Course(REPO_ROOT)
LABS = REPO.labs()
LECTURES = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
# A hint that contains any of these writes the code instead of naming the concept or the symptom.
CODE_IN_HINT = [
    r"\breturn\s+\(",  # return (x - mean) / std
    r"\breturn\s+[A-Za-z_][\w.]*\s*(\(|[,*/+@-]\s*[\w(])",  # return sigmoid(...), return a * b, return w, b
    r"\s@\s",  # x.T @ error
    r"\.T\b",
    r"\b\w+\s*=\s*[\w(][^,;:]*?[-+*/@]\s*[\w(]",  # dw = x.T @ ..., w_new = w - lr * dw
    r"\.(zero_grad|backward|step)\(\)",  # optimizer.zero_grad(); loss.backward(); optimizer.step()
    r"\bF\.\w+\(",  # F.cross_entropy(model(x), y)
    r"\bself\.\w+\s*=",  # self.linear = torch.nn.Linear(...)
]


def notebook(lab: str):
    return nbformat.read(REPO.source / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)


def normalise(line: str) -> str:
    """A code line without comments and whitespace: `x = a  # c` and `x=a` compare equal."""
    return re.sub(r"\s+", "", re.sub(r"\s#.*$", "", line.strip()))


def solution_regions(lab: str) -> list[list[str]]:
    """The normalised code lines of every ### BEGIN/END SOLUTION region of a lab's code cells."""
    regions = []
    for cell in notebook(lab).cells:
        if cell.cell_type != "code":
            continue
        current = None
        for line in cell.source.splitlines():
            if line.strip() == "### BEGIN SOLUTION":
                current = []
            elif line.strip() == "### END SOLUTION":
                regions.append(current)
                current = None
            elif current is not None and normalise(line) and not line.strip().startswith("#"):
                current.append(normalise(line))
    return regions


def significant(lines: list[str]) -> list[str]:
    """Lines long enough to be a giveaway (not `returnprobas`, `returncosts`)."""
    return [line for line in lines if len(line) >= 16 and not line.startswith(('"""', "def", "class"))]


def hint_texts(source: str) -> list[str]:
    """The strings of a cell's hints: hint= arguments, fail()'s third argument, `*hint*` variables and functions."""
    tree = ast.parse(source)
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            nodes += [keyword.value for keyword in node.keywords if keyword.arg == "hint"]
            if getattr(node.func, "id", None) == "fail" and len(node.args) >= 3:
                nodes.append(node.args[2])
        elif isinstance(node, ast.Assign) and any("hint" in getattr(t, "id", "") for t in node.targets):
            nodes.append(node.value)
        elif isinstance(node, ast.FunctionDef) and "hint" in node.name:
            nodes += [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value is not None]
    texts = []
    for node in nodes:
        for part in ast.walk(node):
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                texts.append(part.value)
    return texts


def test_the_lecture_that_seed_000_announces_exists():
    names = [path.name for path in LECTURES]
    assert any("logistic_regression" in name for name in names) and any("softmax" in name for name in names)


@pytest.mark.parametrize("lab", LABS)
def test_no_lab_solution_appears_in_a_lecture_or_a_published_file(lab):
    lecture_lines = set()
    for path in LECTURES:
        for cell in nbformat.read(path, as_version=4).cells:
            lecture_lines |= {normalise(line) for line in cell.source.splitlines()}
    lecture_code = "\n".join(sorted(lecture_lines))
    published_lines = set()
    for name, content in student_tree(REPO, load_settings(REPO_ROOT)).items():
        text = content.decode()
        sources = [c.source for c in nbformat.reads(text, as_version=4).cells] if name.endswith(".ipynb") else [text]
        published_lines |= {normalise(line) for source in sources for line in source.splitlines()}
    # Lines the lab's own given code has too (`z = linear_regression(x, w, b)` in a given cell) are no secret.
    shown = {normalise(line) for cell in notebook(lab).cells
             for line in re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END (SOLUTION|HIDDEN TESTS)", "",
                                cell.source, flags=re.S).splitlines()}
    regions = solution_regions(lab)
    assert regions
    for region in regions:
        lines = significant(region)
        if not lines:
            continue
        copied = [line for line in lines if line in lecture_lines]
        # No region is in a lecture as a whole, and at most a third of its lines (`super().__init__()`-like
        # lines any solution shares) appear there at all.
        assert "\n".join(region) not in lecture_code
        assert len(copied) <= len(lines) / 3, f"{lab}: the lectures show {copied}"
        # Long lines are specific to a solution: none may be published (short ones such as
        # `optimizer.step()` are the API every training loop shares, held by the one-third rule above).
        leaked = {line for line in lines if len(line) >= 25} & published_lines - shown
        assert not leaked, f"{lab}: published files show {leaked}"


@pytest.mark.parametrize("lab", LABS)
def test_no_hint_gives_the_solution_away(lab):
    nb = notebook(lab)
    solution = {line for region in solution_regions(lab) for line in region
                if len(line) >= 12 and not line.startswith(('"""', "def", "class"))}
    checked = 0
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("locked"):
            continue
        for node in ast.walk(ast.parse(cell.source)):  # no string of a locked cell holds a solution line
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = normalise(node.value.replace("\n", " "))
                leaked = [line for line in solution if line in text]
                assert not leaked, f"{lab} {meta['grade_id']}: {node.value!r} contains {leaked}"
        for text in hint_texts(cell.source):
            checked += 1
            for pattern in CODE_IN_HINT:
                assert not re.search(pattern, text), (
                    f"{lab} {meta['grade_id']}: the hint {text!r} writes code ({pattern}); name the concept instead")
    assert checked > 10


@pytest.mark.parametrize("lab", LABS)
def test_every_check_cell_says_when_it_passes(lab):
    for cell in notebook(lab).cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            visible = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            # At the end, or at the end of the branch that compared (f1_macro waits for its pieces).
            assert re.search(r"^\s*passed\(", visible, re.M), f"{lab} {meta['grade_id']}: no passed(...) at the end"


def error_outputs(nb) -> list[tuple[int, str, dict]]:
    return [(index, cell.metadata.get("nbgrader", {}).get("grade_id", ""), output)
            for index, cell in enumerate(nb.cells) for output in cell.get("outputs", [])
            if output.output_type == "error"]


def stderr_of(cell) -> str:
    """What a cell wrote to stderr (the kernel may send one write in several outputs)."""
    return "".join(o.text for o in cell.get("outputs", []) if o.output_type == "stream" and o.name == "stderr")


def check_failures(nb) -> list[tuple[int, str, str]]:
    """(cell index, grade_id, message) of every `CHECK FAILED` a cell printed."""
    return [(index, cell.metadata.get("nbgrader", {}).get("grade_id", ""), stderr_of(cell))
            for index, cell in enumerate(nb.cells) if stderr_of(cell).startswith("CHECK FAILED: ")]


def assert_reaches_the_last_cell(nb, where: str) -> None:
    assert error_outputs(nb) == [], f"{where}: Run all stopped: {error_outputs(nb)[:1]}"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code), f"{where}: a cell did not run"


def assert_says_what_to_finish(nb, failures: list[tuple[int, str, str]], where: str) -> None:
    """Every test cell fails with its message, every other failure says which exercise to finish first; one
    message per cell, no traceback."""
    graded = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    answers = {c.metadata["nbgrader"]["grade_id"] for c in nb.cells
               if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    assert {grade_id for _, grade_id, _ in failures if grade_id.startswith("test_")} == set(graded), where
    for index, grade_id, message in failures:
        cell = f"{where} cell {index} ({grade_id or 'plain'})"
        if grade_id.startswith("test_") or grade_id in answers:  # a check, or an answer cell that sets variables
            assert "is not written yet" in message or "not defined" in message, f"{cell}: {message}"
        else:
            assert re.match(r"CHECK FAILED: finish exercises? `", message), f"{cell}: {message}"
        assert "Traceback" not in message and "the notebook goes on" in message, f"{cell}: {message}"
    assert len({index for index, _, _ in failures}) == len(failures), f"{where}: one message per cell"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_run_all_on_an_untouched_release_reaches_the_last_cell(lab, tmp_path, monkeypatch):
    """A student's Run all (no NBGRADER_EXECUTION): every failed check is shown and the next cells run; the
    messages say what to finish; nothing else on stderr (no warning)."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)  # a judge run in this process may have set it
    release = nbformat.read(REPO.release / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)
    nb = execute_notebook(copy.deepcopy(release), tmp_path, env={"PYTHONWARNINGS": NOTEBOOK_WARNINGS})
    assert_reaches_the_last_cell(nb, lab)
    failures = check_failures(nb)
    assert_says_what_to_finish(nb, failures, lab)
    stderr = [stderr_of(c) for c in nb.cells if stderr_of(c) and not stderr_of(c).startswith("CHECK FAILED: ")]
    assert not stderr, stderr
    assert all(message.count("CHECK FAILED") == 1 for _, _, message in failures), "one message per cell"


# One realistic mistake per lab (a chaff of the corpus): answer cell, chaff, the check that catches it.
ONE_MISTAKE = {"lab1": ("sigmoid", "chaff_wrong_sign", "sigmoid"),
               "lab2": ("LogisticRegression1", "chaff_wrong_sign", "LogisticRegression1_backward"),
               "lab3": ("softmax", "chaff_dim0", "softmax")}


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_run_all_with_one_wrong_exercise_reaches_the_last_cell(lab, tmp_path, monkeypatch):
    """Every exercise solved but one, which is wrong: its check says so and every later cell still runs."""
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)  # a judge run in this process may have set it
    exercise, chaff, check = ONE_MISTAKE[lab]
    filled = fill_release(nbformat.read(REPO.release / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4),
                          notebook(lab))
    (answer,) = [c for c in filled.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise]
    answer.source = (REPO_ROOT / "tests" / "corpus" / lab / exercise / f"{chaff}.py").read_text()
    nb = execute_notebook(filled, tmp_path)
    assert_reaches_the_last_cell(nb, lab)
    failures = check_failures(nb)
    # Its check is the first to fail (a later cell that compares with it may fail too, and says why).
    assert failures and failures[0][1] == f"test_{check}", failures
    for index, _, _ in failures:  # a cell never says that its checks pass and then fails
        printed = "".join(o.get("text", "") for o in nb.cells[index].outputs if o.get("name") == "stdout")
        assert "visible checks pass" not in printed, (index, printed)
    assert failures[0][2].startswith(f"CHECK FAILED: {check.replace('_', '.', 1) if lab == 'lab2' else check}"), \
        failures[0]


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_while_grading_a_failed_check_is_still_an_error(lab, tmp_path):
    """With NBGRADER_EXECUTION set (nbgrader autograde, gradekit's kernel) a failed check stops its cell as an
    error, as nbgrader's scoring expects: one CheckFailed per cell, no chained traceback, no bare NameError."""
    release = nbformat.read(REPO.release / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)
    nb = execute_notebook(copy.deepcopy(release), tmp_path, env={"NBGRADER_EXECUTION": "autograde"})
    errors = error_outputs(nb)
    assert check_failures(nb) == []
    for index, grade_id, output in errors:
        where = f"{lab} cell {index} ({grade_id or 'plain'})"
        assert output.ename == "CheckFailed", f"{where}: {output.ename}: {output.evalue}"
        traceback = "\n".join(output.traceback)
        assert "During handling of the above exception" not in traceback, f"{where}: chained traceback"
        assert "NameError" not in traceback, where
    failures = [(index, grade_id, f"CHECK FAILED: {output.evalue} (the notebook goes on)")
                for index, grade_id, output in errors]
    assert_says_what_to_finish(nb, failures, lab)


# Runs in the kernel runtime's interpreter (Colab's Python and packages): the filled notebook's code cells in
# order, plots built (Agg) but not shown, warnings as errors; the CPU seconds after the first cell (the imports).
_COMPUTE = """
import json, os, sys, time, warnings, contextlib, io
import matplotlib
matplotlib.use("Agg")
os.environ.pop("NBGRADER_EXECUTION", None)
namespace, start = {}, None
with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # a library's own internals: Colab hides them
    warnings.filterwarnings("error", category=DeprecationWarning, module="__main__")
    for source in json.load(sys.stdin):
        exec(compile(source, "<cell>", "exec"), namespace)
        if start is None:
            start = time.process_time()
print(json.dumps({"seconds": time.process_time() - start, "python": sys.version.split()[0]}))
"""


@pytest.mark.parametrize("lab", LABS)
def test_compute_beyond_imports_is_under_five_seconds(lab):
    """The filled notebook as a student runs it on Colab (plots built, not rendered), CPU seconds after the imports."""
    runtime = course_runtime(REPO_ROOT)
    cells = [solution_text(re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source, flags=re.S))
             for cell in notebook(lab).cells if cell.cell_type == "code"]
    done = subprocess.run([runtime.python, "-c", _COMPUTE], input=json.dumps(cells), capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["python"] == runtime.python_version
    assert measured["seconds"] < 5.0, f"{lab}: {measured['seconds']:.1f} s of CPU beyond the imports"


def points_by_section(nb) -> dict[str, float]:
    """Points of the graded cells under each `## ` heading."""
    sections: dict[str, float] = {}
    current = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    current = line[3:].strip()
                    sections.setdefault(current, 0.0)
        points = cell.metadata.get("nbgrader", {}).get("points")
        if points and current is not None:
            sections[current] += points
    return sections


@pytest.mark.parametrize("lab", LABS)
def test_the_parts_table_gives_each_parts_points_and_time(lab):
    """The table at the top names every part that has points, with the points its cells really give."""
    nb = notebook(lab)
    (table,) = [c.source for c in nb.cells[:3] if c.source.startswith("**Parts, points and time**")]
    rows = re.findall(r"^\| (?!part |\*\*total)(.+?) \| (\d+) \| (\d+) min \|$", table, re.M)
    sections = points_by_section(nb)
    listed = {title: float(points) for title, points, _ in rows}
    assert listed == {title: sections.get(title) for title in listed}, table
    assert {title for title, points in sections.items() if points} <= set(listed), table
    total = re.search(r"^\| \*\*total\*\* \| \*\*(\d+)\*\* \| \*\*(\d+) min\*\* \|$", table, re.M)
    assert total and float(total[1]) == sum(sections.values()) and int(total[2]) == sum(int(m) for *_, m in rows)


@pytest.mark.parametrize("lab", LABS)
def test_each_lab_ends_with_what_was_learned_before_the_hand_in(lab):
    headings = [line for c in notebook(lab).cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("## ")]
    assert headings[-2:] == ["## What you learned", "## How to hand in"], headings[-3:]
