"""`publish`: write the student-facing repository (release notebooks, lectures, a README with one
Open-in-Colab badge per lab) and push it to the public repository and branch set in `course.toml`.

This course repository stays private: `source/` holds the solutions and hidden tests, `tests/corpus/`
correct answers. Colab opens notebooks only from a public GitHub repository, so the students get a
separate one that holds only what they may see:

    README.md                         badges, how to work on Colab, how to hand in
    <lab>/<notebook>.ipynb            release/<lab>/<notebook>.ipynb, as nbgrader made it
    lectures/<notebook>.ipynb         the executed lecture notebooks (worked examples)

Every Colab link (the badge in each notebook's first cell, the READMEs) is derived from
`[publish] repository` and `branch`: `release` refreshes the badges of the notebooks, `publish`
checks that the tree holds no solution line and no hidden test before it pushes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from gradekit.course.cells import Delimiters
from gradekit.course.directory import Course
from gradekit.course.exits import ToolFailure, UsageError
from gradekit.course.settings import SETTINGS_FILE, read_settings

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\((?P<url>[^)]*)\)\s*$")
LECTURES = "lectures"
GIT_IDENTITY = ["-c", "user.name=gradekit publish", "-c", "user.email=gradekit-publish@invalid"]


@dataclass(frozen=True)
class PublishSettings:
    repository: str  # GitHub owner/name of the public student repository
    branch: str
    remote: str  # where to push

    def colab_url(self, path: str) -> str:
        """The Open-in-Colab address of a file of the published repository."""
        return f"https://colab.research.google.com/github/{self.repository}/blob/{self.branch}/{path}"

    @property
    def web_url(self) -> str:
        return f"https://github.com/{self.repository}"


def load_settings(root: Path) -> PublishSettings:
    path = Path(root) / SETTINGS_FILE
    if not path.is_file():
        raise UsageError(f"{path} is missing: it names the public student repository ([publish] repository)")
    table = read_settings(root).get("publish", {})
    repository, branch = str(table.get("repository", "")), str(table.get("branch", "main"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+", repository):
        raise UsageError(f"{path}: [publish] repository must be a GitHub owner/name, got {repository!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]*", branch):
        raise UsageError(f"{path}: [publish] branch {branch!r} is not a branch name")
    remote = str(table.get("remote") or f"https://github.com/{repository}.git")
    return PublishSettings(repository, branch, remote)


def badge(url: str) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({url})"


def badge_urls(text: str) -> list[str]:
    """The targets of the Open-in-Colab badges in a markdown text."""
    return re.findall(r"\[!\[Open In Colab\]\(" + re.escape(BADGE_IMAGE) + r"\)\]\(([^)]*)\)", text)


# ---------------------------------------------------------------- what is published, and where


def lab_path(course: Course, lab: str) -> str:
    return f"{lab}/{course.notebook_name(lab)}.ipynb"


def lecture_notebooks(course: Course) -> list[Path]:
    return sorted((course.root / "notebooks").glob("*.ipynb"))


def lecture_path(notebook: Path) -> str:
    return f"{LECTURES}/{notebook.name}"


def set_badge(nb: nbformat.NotebookNode, url: str) -> bool:
    """Put the Open-in-Colab badge for `url` on the first line of the notebook's first cell; True if changed."""
    first = nb.cells[0]
    if first.cell_type != "markdown":
        raise ValueError("the first cell of a course notebook must be markdown (its title)")
    lines = first.source.split("\n")
    if lines and BADGE_RE.match(lines[0]):
        lines = lines[1:]
        while lines and not lines[0].strip():
            lines = lines[1:]
    source = "\n".join([badge(url), "", *lines])
    if source == first.source:
        return False
    first.source = source
    return True


def refresh_badges(course: Course, settings: PublishSettings) -> list[Path]:
    """Rewrite the badge of every lab's source notebook and every lecture notebook; the paths changed."""
    changed = []
    targets = [(course.source / lab / f"{course.notebook_name(lab)}.ipynb", lab_path(course, lab))
               for lab in course.labs()]
    targets += [(path, lecture_path(path)) for path in lecture_notebooks(course)]
    for path, published in targets:
        nb = nbformat.read(path, as_version=4)
        if set_badge(nb, settings.colab_url(published)):
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def _title(nb: nbformat.NotebookNode) -> str:
    for line in nb.cells[0].source.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return "notebook"


def student_readme(course: Course, settings: PublishSettings) -> str:
    rows = []
    for number, lab in enumerate(course.labs(), start=1):
        nb = nbformat.read(course.release / lab / f"{course.notebook_name(lab)}.ipynb", as_version=4)
        path = lab_path(course, lab)
        rows.append(f"| {number} | {_title(nb)} | `{Path(path).name}` | {badge(settings.colab_url(path))} |")
    lectures = []
    for notebook in lecture_notebooks(course):
        nb = nbformat.read(notebook, as_version=4)
        lectures.append(f"- {_title(nb)}: {badge(settings.colab_url(lecture_path(notebook)))}")
    return "\n".join([
        "# Logistic regression from first principles, in PyTorch: the labs",
        "",
        "Three labs, in order. Click a badge to open the lab on Google Colab: it runs there as it is,",
        "with no installation and no data file.",
        "",
        "| lab | topic | notebook | open |",
        "|---|---|---|---|",
        *rows,
        "",
        "The lectures the labs follow (complete worked examples, already run, to read and re-run):",
        "",
        *lectures,
        "",
        "## Working on a lab",
        "",
        "1. Open the lab with its badge, then **File → Save a copy in Drive**: your copy keeps your work",
        "   (the notebook Colab opens from this repository is read-only for you; nothing is saved there).",
        "2. Run the cells from the top. Every exercise has a cell marked `# YOUR CODE HERE`: replace",
        "   `raise NotImplementedError()` with your code and keep the names of the functions and classes.",
        "3. The cell under each exercise runs a few *visible checks*. When they pass it says so; when",
        "   they fail, the last line of the error says what is wrong and gives a hint. Cells that need an",
        "   exercise you have not finished yet say which one to finish first.",
        "",
        "## Handing in",
        "",
        "1. **Runtime → Restart session and run all**: the notebook must run from top to bottom.",
        "2. **File → Download → Download .ipynb**. Keep the file name (for example",
        f"   `{Path(lab_path(course, course.labs()[0])).name}`); rename it if Colab added `Copy of`.",
        "3. Upload that `.ipynb` file to the lab's assignment on the course's learning platform.",
        "",
        "The autograder restores the cells you were not meant to change, runs your notebook again from",
        "top to bottom in a fresh session (plots are skipped), and then runs the visible checks and the",
        "*hidden tests*: your functions called again on other inputs and compared with PyTorch and",
        "scikit-learn. Written answers are graded by hand.",
        "",
    ])


def student_tree(course: Course, settings: PublishSettings) -> dict[str, bytes]:
    """relative path -> content of every file of the student repository."""
    files: dict[str, bytes] = {}
    for lab in course.labs():
        nb = nbformat.read(course.release / lab / f"{course.notebook_name(lab)}.ipynb", as_version=4)
        set_badge(nb, settings.colab_url(lab_path(course, lab)))
        files[lab_path(course, lab)] = nbformat.writes(nb).encode() + b"\n"
    for notebook in lecture_notebooks(course):
        nb = nbformat.read(notebook, as_version=4)
        set_badge(nb, settings.colab_url(lecture_path(notebook)))
        files[lecture_path(notebook)] = nbformat.writes(nb).encode() + b"\n"
    files["README.md"] = student_readme(course, settings).encode()
    files[".gitignore"] = b".ipynb_checkpoints/\n__pycache__/\n"
    return files


# ---------------------------------------------------------------- nothing secret leaves


def _regions(source: str, delimiters: Delimiters) -> tuple[list[str], list[str]]:
    """(lines inside solution/hidden-test regions, lines outside them), stripped."""
    secret = delimiters.solution_lines(source) + delimiters.hidden_lines(source)
    public = delimiters.strip_solution(delimiters.strip_hidden(source)).split("\n")
    return [line.strip() for line in secret], [line.strip() for line in public]


def secret_lines(course: Course) -> set[str]:
    """Solution and hidden-test lines of every lab that the student-visible code does not also have."""
    secret: set[str] = set()
    public: set[str] = set()
    delimiters = Delimiters.of(course)
    for lab in course.labs():
        nb = nbformat.read(course.source / lab / f"{course.notebook_name(lab)}.ipynb", as_version=4)
        for cell in nb.cells:
            hidden, shown = _regions(cell.source, delimiters)
            secret |= set(hidden)
            public |= set(shown)
    # Short or generic lines (`return y`, `)`) and comments may appear anywhere.
    return {line for line in secret - public if len(line) >= 25 and not line.startswith("#")}


def leaks(course: Course, files: dict[str, bytes]) -> list[str]:
    """Why `files` must not be published (empty when they may)."""
    problems = []
    secrets = secret_lines(course)
    delimiters = Delimiters.of(course)
    markers = (delimiters.begin_solution, delimiters.end_solution, delimiters.begin_hidden, delimiters.end_hidden)
    for path, content in sorted(files.items()):
        parts = Path(path).parts
        if parts[0] in ("source", "tests", "autograded", "submitted", "feedback", "reports", "gradekit"):
            problems.append(f"{path}: instructor material")
        text = content.decode(errors="replace")
        for marker in markers:
            if marker in text:
                problems.append(f"{path}: contains {marker!r}")
        if path.endswith(".ipynb"):
            nb = nbformat.reads(text, as_version=4)
            lines = {line.strip() for cell in nb.cells for line in cell.source.splitlines()}
        else:
            lines = {line.strip() for line in text.splitlines()}
        problems += [f"{path}: reveals {line!r}" for line in sorted(lines & secrets)]
    return problems


# ---------------------------------------------------------------- git


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, text=True, capture_output=True)


def _checked(result: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise ToolFailure(f"{what} failed:\n{result.stdout}{result.stderr}")
    return result


def write_tree(files: dict[str, bytes], folder: Path) -> None:
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def publish(course: Course, settings: PublishSettings, message: str = "") -> str | None:
    """Commit the student tree on `settings.branch` of `settings.remote` and push it.

    The branch's history is kept: each publication is one commit that replaces the whole tree
    (files that are no longer published are removed). Returns the new commit, or None when the
    published tree is already up to date."""
    files = student_tree(course, settings)
    problems = leaks(course, files)
    if problems:
        raise UsageError("refusing to publish:\n  " + "\n  ".join(problems))
    with tempfile.TemporaryDirectory(prefix="gradekit-publish-") as scratch:
        work = Path(scratch) / "student"
        cloned = _git("clone", "--quiet", "--branch", settings.branch, "--single-branch", settings.remote,
                      str(work), cwd=Path(scratch))
        if cloned.returncode != 0:  # a new repository, or a new branch of an existing one
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            _checked(_git("init", "--quiet", cwd=work), "git init")
            _checked(_git("checkout", "--quiet", "-b", settings.branch, cwd=work), "git checkout")
            _checked(_git("remote", "add", "origin", settings.remote, cwd=work), "git remote add")
        for entry in work.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        write_tree(files, work)
        _checked(_git("add", "--all", cwd=work), "git add")
        if not _git("status", "--porcelain", cwd=work).stdout.strip():
            return None
        labs = ", ".join(course.labs())
        _checked(_git("commit", "--quiet", "-m", message or f"Publish the labs ({labs})", cwd=work), "git commit")
        _checked(_git("push", "--quiet", "origin", f"HEAD:refs/heads/{settings.branch}", cwd=work), "git push")
        return _checked(_git("rev-parse", "HEAD", cwd=work), "git rev-parse").stdout.strip()


