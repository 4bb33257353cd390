"""The course on disk: where the labs, the release and the grading state live."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbgrader.api import Gradebook
    from traitlets.config import Config

def _default_root() -> Path:
    """The course this kit serves by default: the checkout it runs from (an editable install, `make`), or,
    for an installed package (`pip install .`), the folder the command is run in."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "nbgrader_config.py").is_file() and (checkout / "source").is_dir():
        return checkout
    return Path.cwd().resolve()


REPO_ROOT = _default_root()


def _configured_db_url(config_file: Path) -> str:
    """`c.CourseDirectory.db_url` of a course's nbgrader_config.py ('' when it sets none).

    Read on every use, not cached: the file is Python and may take the URL from the environment."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader(config_file.name, path=str(config_file.parent)).load_config()
    value = config.CourseDirectory.get("db_url", "") if "CourseDirectory" in config else ""
    return str(value or "")


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

    # ------------------------------------------------ what the kit writes (every path, one place)

    @property
    def reports(self) -> Path:
        """reports/: the instructor's outputs and the kit's records of each lab."""
        return self.root / "reports"

    def lab_reports(self, lab: str) -> Path:
        return self.reports / lab

    def status_file(self, lab: str) -> Path:
        """What the last grading run said of each student (`gradekit.course.status`)."""
        return self.lab_reports(lab) / "status.json"

    def collected_file(self, lab: str) -> Path:
        """What `collect` placed for each student: identity, source, hash, time (lms.json)."""
        return self.lab_reports(lab) / "lms.json"

    def ungradable_file(self, lab: str) -> Path:
        return self.lab_reports(lab) / "ungradable.json"

    def collect_history(self, lab: str) -> Path:
        """Earlier submissions that a newer download replaced, per student."""
        return self.lab_reports(lab) / "collect-history"

    def collect_report(self, lab: str) -> Path:
        return self.lab_reports(lab) / "collect.csv"

    @property
    def lms_exports(self) -> Path:
        """Files for the LMS: grade imports and feedback zips."""
        return self.reports / "lms"

    @property
    def backups(self) -> Path:
        """Copies of the gradebook and the grading records, before each collect and grade (`gradekit restore`)."""
        return self.reports / "backups"

    @property
    def roster_file(self) -> Path:
        return self.reports / "roster.json"

    # ------------------------------------------------ configuration and gradebook

    def config(self) -> Config:
        """The course's nbgrader_config.py as a traitlets Config, rooted at this course: the one loader."""
        from traitlets.config import Config
        from traitlets.config.loader import PyFileConfigLoader

        config = Config()
        if (self.root / "nbgrader_config.py").is_file():
            config.merge(PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config())
        config.CourseDirectory.root = str(self.root)  # nbgrader's own paths (gradebook, folders) from here
        return config

    @contextmanager
    def open_gradebook(self) -> Iterator[Gradebook]:
        """nbgrader's gradebook, opened and closed (opening creates its tables: ask `has_gradebook()` first
        where that matters)."""
        from nbgrader.api import Gradebook

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's models
            with Gradebook(self.db_url) as gradebook:
                yield gradebook

    @property
    def db_url(self) -> str:
        """nbgrader's gradebook: nbgrader_config.py's `c.CourseDirectory.db_url`, else nbgrader's default,
        SQLite in <root>/gradebook.db. Any SQLAlchemy URL nbgrader accepts
        (postgresql+psycopg2://user:password@host/database for several graders and the formgrader).

        Only the course's config file says it (no environment override): nbgrader's own commands, the
        formgrader and the grader's scoring step read that file too, so they all use one database.
        The file may read the URL from the environment itself (tests, secrets kept out of the repo)."""
        url = ""
        config_file = self.root / "nbgrader_config.py"
        if config_file.is_file():
            url = _configured_db_url(config_file).strip()
        if not url:
            return f"sqlite:///{self.root / 'gradebook.db'}"
        return _anchor_sqlite(url, self.root)

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def gradebook(self) -> Path:
        """The SQLite gradebook file (for a server database, the default path, which does not exist:
        use `has_gradebook()` to ask whether there is a gradebook)."""
        if self.is_sqlite:
            from sqlalchemy.engine import make_url

            database = make_url(self.db_url).database
            if database and database != ":memory:":
                return Path(database)
        return self.root / "gradebook.db"

    @property
    def db_display(self) -> str:
        """The gradebook's URL as it may be printed: never the password."""
        from sqlalchemy.engine import make_url

        return make_url(self.db_url).render_as_string(hide_password=True)

    def has_gradebook(self) -> bool:
        """Whether nbgrader's gradebook exists (the SQLite file, or nbgrader's tables in the server database).

        Asking must not create it (opening `nbgrader.api.Gradebook` creates the tables). A server
        that cannot be reached is an error, not "no gradebook"."""
        if self.is_sqlite:
            return self.gradebook.is_file()
        from sqlalchemy import create_engine, inspect

        engine = create_engine(self.db_url)
        try:
            return inspect(engine).has_table("assignment")
        finally:
            engine.dispose()

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


def _anchor_sqlite(url: str, root: Path) -> str:
    """A relative SQLite path is relative to the course root (nbgrader runs there), wherever we run."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return url
    if Path(parsed.database).is_absolute():
        return url
    return parsed.set(database=str(root / parsed.database)).render_as_string(hide_password=False)


def repo_course() -> Course:
    return Course(REPO_ROOT)
