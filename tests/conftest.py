"""Shared fixtures: scratch nbgrader courses built from this repository's source/."""

from __future__ import annotations

import copy
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from gradekit.course.directory import REPO_ROOT, Course
from gradekit.sandbox.runtime import course_runtime, write_kernelspec


def build_course(root: Path, labs: list[str] | None = None) -> Course:
    """A fresh course in `root`: this repo's config and source/ labs, released, with an empty gradebook."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    repo = Course(REPO_ROOT)
    labs = labs or repo.labs()
    for lab in labs:
        shutil.copytree(repo.source / lab, root / "source" / lab)
    course = Course(root)
    for lab in labs:
        course.nbgrader("generate_assignment", lab, "--force")
    return course


def submit(course: Course, student: str, lab: str, notebook_path: Path | str) -> Path:
    """Place a notebook as `student`'s submission of `lab` (nbgrader's submitted/ layout)."""
    target = course.submitted / student / lab / f"{course.notebook_name(lab)}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook_path, target)
    return target


@pytest.fixture(scope="session")
def repo_course() -> Course:
    return Course(REPO_ROOT)


@pytest.fixture
def course_factory(tmp_path: Path):
    """Call with a list of labs (default: all) to get a released scratch course."""

    def factory(labs: list[str] | None = None, name: str = "course") -> Course:
        return build_course(tmp_path / name, labs)

    return factory


# Every warning shown once, but deprecations a library raises about its own internals: a notebook's deprecated
# call (attributed to __main__, its cells' module) still shows and fails the check. Colab's kernel runs with Python's
# default filters, which hide those internal ones from the student (matplotlib 3.10 calling pyparsing's old names,
# jupyter_client 7.4 calling utcnow on Python 3.13); later entries take precedence.
NOTEBOOK_WARNINGS = "default,ignore::DeprecationWarning,default::DeprecationWarning:__main__"


@functools.cache
def runtime_kernel() -> str:
    """The name of a Jupyter kernel in the kernel runtime the kit grades with (course.toml [runtime]: Colab's
    Python and packages): notebooks run in tests as students run them. Found through JUPYTER_PATH."""
    folder = Path(tempfile.mkdtemp(prefix="gradekit-kernels-"))
    name = write_kernelspec(course_runtime(REPO_ROOT), folder)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")]))
    return name


def execute_notebook(nb, cwd: Path, env: dict[str, str] | None = None, timeout: int = 120):
    """Execute a notebook in a fresh kernel of the kernel runtime (errors recorded, not raised); returns it."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name=runtime_kernel(), allow_errors=True,
                            resources={"metadata": {"path": str(cwd)}})
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def error_and_stderr_outputs(nb) -> list[str]:
    """Every error or stderr output of a notebook, as 'cell <i> (<grade_id>): <text>'."""
    problems = []
    for index, cell in enumerate(nb.cells):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"cell {index} ({grade_id}): {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                problems.append(f"cell {index} ({grade_id}) wrote to stderr: {output.text[:500]}")
    return problems


def solution_text(source: str) -> str:
    """An answer cell's source as a student who wrote the instructor's solution would have it."""
    lines = [line for line in source.splitlines()
             if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]
    return "\n".join(lines)


def fill_release(release_nb, source_nb):
    """The student notebook with every answer cell (code and written) filled with the solution."""
    solutions = {c.metadata["nbgrader"]["grade_id"]: c for c in source_nb.cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
    filled = copy.deepcopy(release_nb)
    for cell in filled.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            cell.source = solution_text(solutions[grade_id].source)
    return filled
