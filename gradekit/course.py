"""The course on disk: where the labs, the release and the grading state live."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Course:
    """An nbgrader course directory (the repository root, or a scratch copy for demos and tests)."""

    root: Path

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def release(self) -> Path:
        return self.root / "release"

    @property
    def submitted(self) -> Path:
        return self.root / "submitted"

    @property
    def autograded(self) -> Path:
        return self.root / "autograded"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback"

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    def labs(self) -> list[str]:
        """Assignment ids, in teaching order (the folders of source/)."""
        return sorted(p.name for p in self.source.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))

    def notebook_name(self, lab: str) -> str:
        """The one notebook of a lab, without `.ipynb`."""
        (notebook,) = sorted(self.source.joinpath(lab).glob("*.ipynb"))
        return notebook.stem

    def nbgrader(self, *args: str, check: bool = True, quiet: bool = True) -> subprocess.CompletedProcess:
        """Run an nbgrader command in this course directory, with the course's config."""
        command = [sys.executable, "-m", "nbgrader", *args]
        if quiet and args[:1] != ("validate",):  # `nbgrader validate` takes no --log-level
            command.append("--log-level=WARN")
        return subprocess.run(command, cwd=self.root, check=check, text=True, capture_output=quiet,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})


def repo_course() -> Course:
    return Course(REPO_ROOT)
