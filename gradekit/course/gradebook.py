"""nbgrader's gradebook wherever `db_url` puts it: SQLite (the default) or a database server.

The grader's sanitize step runs nbgrader's Autograde, which writes (a student row, a submission), so
it runs against a private SQLite copy, never the real gradebook. A SQLite gradebook is copied as a
file. A server gradebook (PostgreSQL) cannot be, so `private_copy` copies what sanitizing reads into
a new SQLite file: the assignments as released (notebooks, cells, the instructor's source) and the
students. Submissions and grades are left behind: sanitizing recreates the submission it needs, and
at MOOC scale they are most of the rows.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbgrader.apps.api import NbGraderAPI

from sqlalchemy import create_engine, select
from traitlets.config import Config

from gradekit.course.directory import Course

# What sanitizing reads (nbgrader.api table names); the rest of the schema is created empty.
DEFINITION_TABLES = ("course", "assignment", "notebook", "base_cell", "grade_cells", "solution_cells",
                     "task_cells", "source_cell", "student")
BATCH = 5000  # rows per INSERT: bounded memory for a large class


def private_copy(course: Course, target: Path) -> str:
    """A SQLite gradebook at `target` that sanitizing may write; its URL. The real gradebook is only read."""
    if course.is_sqlite:
        shutil.copyfile(course.gradebook, target)
        return f"sqlite:///{target}"
    from nbgrader.api import Base

    url = f"sqlite:///{target}"
    source, copy = create_engine(course.db_url), create_engine(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's models
            Base.metadata.create_all(copy)
        tables = [t for t in Base.metadata.sorted_tables if t.name in DEFINITION_TABLES]  # parents first
        # One read transaction: a consistent snapshot while other graders write (REPEATABLE READ on
        # PostgreSQL), so no cell refers to a notebook the copy lacks.
        with source.connect().execution_options(isolation_level="REPEATABLE READ") as reading, \
                copy.begin() as writing:
            for table in tables:
                rows = reading.execute(select(table)).mappings()
                while batch := rows.fetchmany(BATCH):
                    writing.execute(table.insert(), [dict(row) for row in batch])
    finally:
        source.dispose()
        copy.dispose()
    return url


def nbgrader_api(config: Config) -> NbGraderAPI:
    """nbgrader's API on a course config, its log quiet and kept apart (a grading run's passes use it)."""
    # nbgrader's own SQLAlchemy warnings (plain `nbgrader autograde` hides them the same way).
    from nbgrader.apps.api import NbGraderAPI
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory

    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", module="sqlalchemy")
    log = logging.getLogger("gradekit.nbgrader")
    log.propagate = False
    log.setLevel(logging.INFO)
    coursedir = CourseDirectory(config=config)
    api = NbGraderAPI(coursedir=coursedir, authenticator=Authenticator(config=config), config=config)
    api.log = log
    coursedir.log = log
    return api
