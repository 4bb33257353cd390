"""`gradekit init DIR`: a course of its own, kept apart from the kit (nbgrader's course-directory shape).

DIR gets the kit's `nbgrader_config.py` and a `course.toml`, and `source/<lab>/` for the labs chosen;
`release`, `collect`, `grade`, `feedback`, `report`, `lms` and `restore` then take `--course DIR`. The
course's gradebook, submissions and reports live in DIR only: updating the kit never touches them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.exits import UsageError

COURSE_TOML = """# Course settings that are not nbgrader's (nbgrader's own live in nbgrader_config.py).

[publish]
# The PUBLIC repository that students open in Colab (owner/name): `gradekit publish` writes the student
# notebooks there and every Open-in-Colab link points into it.
repository = "{repository}"
branch = "main"

[lms]
# Each lab's points in the LMS (grades are scaled to them), and each lab's Canvas assignment id.
# points = {{ lab1 = 10 }}
# canvas = {{ lab1 = 4242 }}

[runtime]
# The Python and packages the notebooks are graded with: Colab's (the kit's runtimes/colab.txt, docs/runtime.md),
# a pins file of this course's own (e.g. its JupyterHub image's), or "grader" for the grader's environment.
pins = "runtimes/colab.txt"
"""


def create_course(target: Path, labs: list[str] | None = None, repository: str = "your-org/your-course-labs",
                  kit: Course | None = None) -> Course:
    """Make a new course in `target` (absent or empty) with the kit's labs `labs` (default: all of them)."""
    kit = kit or Course(REPO_ROOT)
    target = target.expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{target} exists and is not empty: a new course goes in a new folder")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+", repository):
        raise UsageError(f"--repository {repository!r}: a GitHub owner/name")
    available = kit.labs()
    chosen = labs or available
    unknown = [lab for lab in chosen if lab not in available]
    if unknown:
        raise UsageError(f"no lab {', '.join(unknown)} in the kit (labs: {', '.join(available)})")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(kit.root / "nbgrader_config.py", target / "nbgrader_config.py")
    (target / "course.toml").write_text(COURSE_TOML.format(repository=repository), encoding="utf-8")
    for lab in chosen:
        shutil.copytree(kit.source / lab, target / "source" / lab,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return Course(target)
