"""`python -m gradekit publish`: the public student repository holds the student notebooks, the lectures
and a README with one Open-in-Colab badge per lab, nothing from source/ or tests/, no solution and no
hidden test; every Colab link of the course points into it (course.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gradekit.authoring.publish import PublishSettings, badge_urls, lab_path, lecture_path, load_settings, publish
from gradekit.course.directory import REPO_ROOT, Course

REPO = Course(REPO_ROOT)
SETTINGS = load_settings(REPO_ROOT)
COLAB = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"']+")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, text=True, capture_output=True).stdout


def secret_lines() -> set[str]:
    """Solution and hidden-test lines of the instructor notebooks that no student-visible line repeats."""
    secret, public = set(), set()
    for lab in REPO.labs():
        nb = nbformat.read(REPO.source / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)
        for cell in nb.cells:
            inside = False
            for line in cell.source.splitlines():
                stripped = line.strip()
                if stripped in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                    inside = True
                elif stripped in ("### END SOLUTION", "### END HIDDEN TESTS"):
                    inside = False
                else:
                    (secret if inside else public).add(stripped)
    return {line for line in secret - public if len(line) >= 25 and not line.startswith("#")}


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> tuple[Path, Path, PublishSettings, str | None]:
    """Publish once into a local bare repository; (bare repository, a clone of the branch, settings, commit)."""
    root = tmp_path_factory.mktemp("publish")
    bare = root / "students.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    settings = PublishSettings(SETTINGS.repository, SETTINGS.branch, str(bare))
    commit = publish(REPO, settings)
    clone = root / "clone"
    subprocess.run(["git", "clone", "--quiet", "--branch", settings.branch, str(bare), str(clone)], check=True)
    return bare, clone, settings, commit


def published_files(clone: Path) -> list[str]:
    return sorted(git("ls-files", cwd=clone).split())


def test_settings_name_a_public_repository_and_branch():
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", SETTINGS.repository) and SETTINGS.repository != "OWNER/REPO"
    assert SETTINGS.branch
    assert SETTINGS.colab_url("lab1/x.ipynb") == (
        f"https://colab.research.google.com/github/{SETTINGS.repository}/blob/{SETTINGS.branch}/lab1/x.ipynb")


def test_published_tree_is_the_student_material_only(published):
    _, clone, _, commit = published
    assert commit and git("rev-parse", "HEAD", cwd=clone).strip() == commit
    files = published_files(clone)
    expected = {lab_path(REPO, lab) for lab in REPO.labs()}
    expected |= {lecture_path(p) for p in sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))}
    expected |= {"README.md", ".gitignore"}
    assert set(files) == expected
    assert not any(f.split("/")[0] in ("source", "tests", "gradekit", "release") for f in files)
    for lab in REPO.labs():  # the student notebooks are nbgrader's release, badge and all
        released = nbformat.read(REPO.release / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)
        public = nbformat.read(clone / lab_path(REPO, lab), as_version=4)
        assert [c.source for c in public.cells] == [c.source for c in released.cells]


def test_published_tree_holds_no_solution_and_no_hidden_test(published):
    _, clone, _, _ = published
    secrets = secret_lines()
    assert len(secrets) > 50  # the check has something to find
    for name in published_files(clone):
        text = (clone / name).read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "_hidden_test_"):
            assert marker not in text, f"{name} contains {marker!r}"
        if name.endswith(".ipynb"):
            lines = {line.strip() for cell in nbformat.reads(text, as_version=4).cells
                     for line in cell.source.splitlines()}
        else:
            lines = {line.strip() for line in text.splitlines()}
        assert not lines & secrets, f"{name} reveals {sorted(lines & secrets)[:3]}"


def test_every_badge_points_into_the_published_repository(published):
    _, clone, settings, _ = published
    files = set(published_files(clone))
    readme = (clone / "README.md").read_text()
    lab_badges = [url for url in badge_urls(readme) if "/lectures/" not in url]
    assert lab_badges == [settings.colab_url(lab_path(REPO, lab)) for lab in REPO.labs()], "one badge per lab, in order"
    prefix = f"https://colab.research.google.com/github/{settings.repository}/blob/{settings.branch}/"
    for name in sorted(files):
        text = (clone / name).read_text()
        for url in COLAB.findall(text):
            assert url.startswith(prefix) and url.removeprefix(prefix) in files, f"{name}: {url}"
        if name.endswith(".ipynb"):  # each notebook opens itself from its first cell
            first = nbformat.reads(text, as_version=4).cells[0].source
            assert badge_urls(first.splitlines()[0]) == [settings.colab_url(name)], name
    assert "Download .ipynb" in readme and "Save a copy in Drive" in readme


def test_committed_notebooks_and_readme_link_into_the_public_repository():
    """The badges in source/, release/ and notebooks/, and the course README's links, follow course.toml."""
    for lab in REPO.labs():
        for folder in (REPO.source, REPO.release):
            nb = nbformat.read(folder / lab / f"{REPO.notebook_name(lab)}.ipynb", as_version=4)
            assert badge_urls(nb.cells[0].source.splitlines()[0]) == [SETTINGS.colab_url(lab_path(REPO, lab))]
            assert any(c.cell_type == "markdown" and c.source.startswith("## How to hand in") for c in nb.cells)
    for path in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert badge_urls(nb.cells[0].source.splitlines()[0]) == [SETTINGS.colab_url(lecture_path(path))]
    readme = (REPO_ROOT / "README.md").read_text()
    links = [url for url in COLAB.findall(readme) if "/lectures/" not in url]
    assert links == [SETTINGS.colab_url(lab_path(REPO, lab)) for lab in REPO.labs()]
    assert "OWNER/REPO" not in readme


def test_publishing_again_keeps_history_and_changes_nothing(published):
    bare, _, settings, commit = published
    assert publish(REPO, settings) is None  # same tree: no new commit
    assert git("rev-parse", settings.branch, cwd=bare).strip() == commit


def test_publish_command_pushes_to_a_new_branch(published, tmp_path):
    bare, _, settings, _ = published
    result = subprocess.run([sys.executable, "-m", "gradekit", "publish", "--remote", str(bare), "--branch", "spring"],
                            cwd=REPO_ROOT, text=True, capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published" in result.stdout
    assert f"github/{settings.repository}/blob/spring/lab1/" in result.stdout  # links follow the branch
    files = git("ls-tree", "-r", "--name-only", "spring", cwd=bare).split()
    assert "README.md" in files and lab_path(REPO, "lab1") in files
    readme = git("show", "spring:README.md", cwd=bare)
    assert all("/blob/spring/" in url for url in badge_urls(readme))
