"""A PostgreSQL gradebook, end to end, against a real server the tests start themselves.

The server comes from Debian's `postgresql` package (`make setup` installs it): initdb and pg_ctl run as
the unprivileged user `nobody` (postgres refuses root) on a scratch directory, listening on 127.0.0.1
with password authentication, fsync off. A course whose nbgrader_config.py sets
`c.CourseDirectory.db_url` to it goes through release, collect, grade (two graders at once, one lab
each, from two course directories sharing the one database), a manual grade in the formgrader, nbgrader
export, feedback and report; the same class in a SQLite course gets the same grades everywhere.
Sanitizing (which writes) never touches the server's gradebook.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, inspect, text

from gradekit.authoring import notebooks as authoring
from gradekit.authoring.release import release_lab
from gradekit.commands import main as gradekit_main
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.exits import UsageError
from gradekit.course.gradebook import private_copy
from gradekit.course.status import Status, write_status
from gradekit.grading.run import grade_lab
from gradekit.proof.demo import write_lms_zip
from gradekit.sandbox.settings import Limits
from gradekit.staging.sanitize import sanitize_api

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from tiny_course import NOTEBOOK, SOLUTION, TESTS  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("postgres")]

LABS = ("tiny", "tiny2")  # two labs, so that two graders can work at once
CLASS = {  # lab -> student -> answer (None: the untouched release)
    "tiny": {"good": "def double(x):\n    return 2 * x", "wrong": "def double(x):\n    return x + 1"},
    "tiny2": {"good": "def double(x):\n    return x * 2", "wrong": "def double(x):\n    return x"},
}
MANUAL = {("tiny", "good"): 1.5, ("tiny", "wrong"): 0.5}  # points for the written answer, out of 2
PG_USER = "nobody"  # postgres will not run as root; nobody owns nothing else of ours
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))


class PostgresServer:
    """A throwaway PostgreSQL cluster: scratch data directory, 127.0.0.1, password authentication."""

    def __init__(self) -> None:
        self.bin = Path(PG_BIN[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="gradekit-pg-"))
        shutil.chown(self.dir, PG_USER, PG_USER if _has_group(PG_USER) else None)
        self.password = secrets.token_hex(12)
        self.port = _free_port()
        password_file = self.dir / "password"
        password_file.write_text(self.password + "\n")
        shutil.chown(password_file, PG_USER)
        self._as_user("initdb", "-D", str(self.dir / "data"), "-U", "gradekit", f"--pwfile={password_file}",
                      "--auth=scram-sha-256", "-E", "UTF8", "--no-sync", "--no-instructions")
        password_file.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100")
        self._as_user("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                      "-o", options, "start")

    def _as_user(self, program: str, *args: str) -> None:
        result = subprocess.run(["runuser", "-u", PG_USER, "--", str(self.bin / program), *args],
                                capture_output=True, text=True, timeout=120, cwd=self.dir)
        assert result.returncode == 0, f"{program}: {result.stdout}{result.stderr}{self.log()}"

    def log(self) -> str:
        log = self.dir / "server.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://gradekit:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", PG_USER, "--", str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_group(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    if not PG_BIN:
        message = "PostgreSQL is not installed (make setup installs Debian's postgresql)"
        if os.geteuid() == 0:
            pytest.fail(message)  # as root (CI) `make setup` installs it: its absence is a set-up bug
        pytest.skip(message)
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- the course


def build_course(root: Path, db_url: str | None, labs: tuple[str, ...] = LABS) -> Course:
    """The tiny `double` lab, plus a written answer graded by hand, as labs tiny and tiny2; released."""
    root.mkdir(parents=True, exist_ok=True)
    config = (REPO_ROOT / "nbgrader_config.py").read_text()
    if db_url:  # where an instructor puts it: nbgrader, the formgrader and gradekit all read it here
        config += f"\nc.CourseDirectory.db_url = {db_url!r}\n"
    (root / "nbgrader_config.py").write_text(config)
    for lab in labs:
        cells = [
            authoring.markdown("# Double"),
            authoring.readonly("imports", "import torch"),
            authoring.checks_cell(),
            authoring.answer("double", SOLUTION),
            authoring.tests("test_double", 3, TESTS),
            authoring.written("explain", 2, "Doubling multiplies by two."),
        ]
        authoring.write_notebook(root / "source" / lab / f"{NOTEBOOK}.ipynb", cells, lab)
    course = Course(root)
    # nbgrader runs `alembic` from PATH when it creates a gradebook: use the venv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for lab in labs:
        release_lab(course, lab)
    return course


def collect(course: Course, lab: str) -> None:
    """The class arrives as a Canvas bulk download and goes through `gradekit collect`."""
    release = nbformat.read(course.release / lab / f"{NOTEBOOK}.ipynb", as_version=4)
    files = {}
    for student, answer in CLASS[lab].items():
        nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
        for cell in nb.cells:
            if answer is not None and cell.metadata.get("nbgrader", {}).get("grade_id") == "double":
                cell.source = answer
            if cell.metadata.get("nbgrader", {}).get("grade_id") == "explain":
                cell.source = f"{student} says: it multiplies by two."
        files[student] = nbformat.writes(nb).encode()
    download = course.root / "downloads" / f"{lab}.zip"
    download.parent.mkdir(exist_ok=True)
    write_lms_zip(download, lab, NOTEBOOK, files)
    assert gradekit_main(["collect", lab, str(download), "--course", str(course.root)]) == 0


def student_names(course: Course, lab: str) -> dict[str, str]:
    """student id given by `collect` (the LMS's user id) -> the name in CLASS (each wrote it in their answer)."""
    names = {}
    for path in course.submitted.glob(f"*/{lab}/{NOTEBOOK}.ipynb"):
        nb = nbformat.read(path, as_version=4)
        answer = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "explain")
        names[path.parent.parent.name] = answer.split(" says:")[0]
    assert sorted(names.values()) == sorted(CLASS[lab])
    return names


def grade_in_process(course: Course, lab: str) -> dict[str, tuple[str, float | None]]:
    run = grade_lab(course, lab, workers=2, limits=Limits(timeout=120), progress=io.StringIO())
    write_status(course, run.status_file())  # as `gradekit grade` does: the feedback says the runtime from it
    names = student_names(course, lab)  # those who submitted this lab (not the gradebook's others, "missing")
    return {names[s.student]: (s.status, s.score) for s in run.students if s.student in names}


def grade_at_once(courses: dict[str, Course]) -> None:
    """Two graders at once, each its own lab from its own course directory, one shared gradebook."""
    graders = {lab: subprocess.Popen([sys.executable, "-m", "gradekit", "grade", lab, "--course", str(course.root),
                                      "--workers", "1", "--timeout", "120"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for lab, course in courses.items()}
    for lab, grader in graders.items():
        output, _ = grader.communicate(timeout=240)
        assert grader.returncode == 0, f"grading {lab}:\n{output}"


def hand_graded(course: Course) -> dict[tuple[str, str], float]:
    """(lab, student id) -> manual points, for MANUAL's (lab, name)."""
    ids = {lab: {name: student for student, name in student_names(course, lab).items()} for lab in LABS}
    return {(lab, ids[lab][name]): points for (lab, name), points in MANUAL.items()}


def grade_by_hand_in_formgrader(course: Course) -> None:
    """Manual grades through the formgrader's own API (a Jupyter server with nbgrader's extension)."""
    token, port = secrets.token_hex(16), _free_port()
    log = course.root / "formgrader.log"
    with log.open("w") as log_file:  # a file, not a pipe: a full pipe would block the server
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--port={port}",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={course.root}",
             "--ServerApp.allow_root=True"],  # CI runs as root; the server only listens on 127.0.0.1
            cwd=course.root, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/formgrader/api"

    def call(method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(f"{base}{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own local server
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                call("GET", "/assignments")
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
        for (lab, student), points in hand_graded(course).items():
            submission = next(s for s in call("GET", f"/submitted_notebooks/{lab}/{NOTEBOOK}")
                              if s["student"] == student)
            grades = call("GET", f"/grades?submission_id={submission['id']}")
            grade = next(g for g in grades if g["name"] == "explain")
            assert call("PUT", f"/grade/{grade['id']}", {"manual_score": points})["manual_score"] == points
    finally:
        server.terminate()
        server.wait(timeout=30)


def grade_by_hand_in_api(course: Course) -> None:
    with Gradebook(course.db_url) as gb:
        for (lab, student), points in hand_graded(course).items():
            grade = gb.find_grade("explain", NOTEBOOK, lab, student)
            grade.manual_score, grade.needs_manual_grade = points, False
        gb.db.commit()


# ---------------------------------------------------------------- what is compared


def gradebook_grades(course: Course) -> dict:
    """(lab, student, grade id) -> (auto, manual, final score), and every submission's total."""
    with Gradebook(course.db_url) as gb:
        cells = {(lab, s.student.id, g.name): (g.auto_score, g.manual_score, g.score)
                 for lab in LABS for s in gb.assignment_submissions(lab) for g in s.notebooks[0].grades}
        totals = {(lab, s.student.id): s.score for lab in LABS for s in gb.assignment_submissions(lab)}
    return {"cells": cells, "totals": totals}


def exported(course: Course) -> list[dict]:
    """`nbgrader export` (its CSV plugin), without the submission times."""
    result = course.nbgrader("export", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    with (course.root / "grades.csv").open() as handle:
        rows = [{k: v for k, v in row.items() if k not in ("timestamp", "duedate")} for row in csv.DictReader(handle)]
    return sorted(rows, key=lambda row: (row["assignment"], row["student_id"]))


def reported(course: Course) -> str:
    assert gradekit_main(["report", *LABS, "--course", str(course.root)]) == 0
    return (course.root / "reports" / "grades.csv").read_text()


def feedback_pages(courses: dict[str, Course]) -> dict[tuple[str, str], str]:
    """Each lab's feedback pages, written where that lab was graded (autograded/ is per course directory)."""
    pages = {}
    for lab, course in courses.items():
        assert gradekit_main(["feedback", lab, "--course", str(course.root)]) == 0
        for page in sorted(course.feedback.glob(f"*/{lab}/*.html")):
            pages[(lab, page.parent.parent.name)] = page.read_text()
    return pages


# ---------------------------------------------------------------- tests


def test_postgres_gradebook_gives_the_same_grades_as_sqlite(tmp_path, postgres):
    url = postgres.create_database("same_grades")
    pg = build_course(tmp_path / "pg", url)
    assert pg.db_url == url and not pg.is_sqlite and pg.has_gradebook()
    assert postgres.password not in pg.db_display
    assert not pg.gradebook.exists()  # nothing fell back to a SQLite file
    # A second grader's checkout of the same course: own directory, same database.
    pg_second = Course(tmp_path / "pg-second")
    shutil.copytree(pg.root, pg_second.root)
    sqlite = build_course(tmp_path / "sqlite", None)
    assert sqlite.is_sqlite and sqlite.gradebook.is_file()

    for course in (pg, pg_second, sqlite):
        for lab in LABS:
            collect(course, lab)
    grade_at_once({"tiny": pg, "tiny2": pg_second})
    sqlite_status = {lab: grade_in_process(sqlite, lab) for lab in LABS}
    assert sqlite_status == {"tiny": {"good": (Status.GRADED, 3.0), "wrong": (Status.GRADED, 0.0)},
                             "tiny2": {"good": (Status.GRADED, 3.0), "wrong": (Status.GRADED, 0.0)}}
    grade_by_hand_in_formgrader(pg)
    grade_by_hand_in_api(sqlite)

    assert not pg.gradebook.exists()
    expected = gradebook_grades(sqlite)
    assert gradebook_grades(pg) == expected
    good = {name: student for student, name in student_names(sqlite, "tiny").items()}["good"]
    assert expected["totals"][("tiny", good)] == 3 + MANUAL[("tiny", "good")]
    assert exported(pg) == exported(sqlite)
    assert reported(pg) == reported(sqlite)
    assert feedback_pages({"tiny": pg, "tiny2": pg_second}) == feedback_pages({lab: sqlite for lab in LABS})
    # The status each grader wrote, next to its own course.
    for course, lab in ((pg, "tiny"), (pg_second, "tiny2")):
        status = json.loads((course.root / "reports" / lab / "status.json").read_text())
        names = student_names(course, lab)
        assert {names[s["student"]]: s["score"] for s in status["students"] if s["student"] in names} == \
            {s: v[1] for s, v in sqlite_status[lab].items()}


def test_sanitizing_never_writes_the_server_gradebook(tmp_path, postgres):
    url = postgres.create_database("sanitize_only")
    course = build_course(tmp_path / "course", url, labs=("tiny",))
    engine = create_engine(url)

    def snapshot() -> dict[str, list]:
        with engine.connect() as connection:
            return {table: sorted(map(tuple, connection.execute(text(f'SELECT * FROM "{table}"'))), key=repr)
                    for table in inspect(engine).get_table_names()}

    before = snapshot()
    staging = tmp_path / "staging"
    submission = staging / "submitted" / "newcomer" / "tiny" / f"{NOTEBOOK}.ipynb"
    submission.parent.mkdir(parents=True)
    shutil.copy(course.release / "tiny" / f"{NOTEBOOK}.ipynb", submission)
    copy_url = private_copy(course, staging / "gradebook-copy.db")

    outcome = sanitize_api(course.config(), staging).autograde("tiny", "newcomer", force=True, create=True)
    assert outcome["success"], outcome.get("log")
    assert (staging / "sanitized" / "newcomer" / "tiny" / f"{NOTEBOOK}.ipynb").exists()
    assert snapshot() == before  # not a row changed on the server
    with Gradebook(copy_url) as copy:  # the private copy got the writes
        assert [s.id for s in copy.students] == ["newcomer"]
        assert [a.name for a in copy.assignments] == ["tiny"]
    engine.dispose()


def test_several_scorers_write_a_server_gradebook_at_once(tmp_path, postgres, monkeypatch):
    """Two scorer processes on PostgreSQL (each its own sessions, a class of six): every record whole, the
    same grades as one scorer on SQLite. SQLite refuses a second scorer before touching anything."""
    monkeypatch.setitem(CLASS, "tiny", {f"{kind}{n}": CLASS["tiny"][kind] for kind in ("good", "wrong")
                                        for n in range(3)})
    pg = build_course(tmp_path / "pg", postgres.create_database("two_scorers"), labs=("tiny",))
    sqlite = build_course(tmp_path / "sqlite", None, labs=("tiny",))
    for course in (pg, sqlite):
        collect(course, "tiny")
    with pytest.raises(UsageError, match="one writer at a time"):
        grade_lab(sqlite, "tiny", workers=2, limits=Limits(timeout=120), progress=io.StringIO(), scorers=2)
    runs = {name: grade_lab(course, "tiny", workers=3, limits=Limits(timeout=120), progress=io.StringIO(),
                            scorers=2 if name == "pg" else None)
            for name, course in (("pg", pg), ("sqlite", sqlite))}
    results = {}
    for name, course in (("pg", pg), ("sqlite", sqlite)):
        names = student_names(course, "tiny")
        assert {names[s.student]: (s.status, s.score) for s in runs[name].students} == {
            f"{kind}{n}": (Status.GRADED, 3.0 if kind == "good" else 0.0)
            for kind in ("good", "wrong") for n in range(3)}
        with Gradebook(course.db_url) as gb:
            results[name] = sorted((names[s.student.id], g.name, g.auto_score, g.needs_manual_grade)
                                   for s in gb.assignment_submissions("tiny") for g in s.notebooks[0].grades)
    assert results["pg"] == results["sqlite"] and len(results["pg"]) == 12


def test_a_stopped_server_and_a_wrong_password_are_one_line_each(tmp_path, postgres):
    """A database that stops under the course, and a password that does not match: the command says which in
    one line (no SQL, no password), exit 3 and 2, and the server's grades are untouched once it is back."""
    wrong = postgres.url(postgres.create_database("wrongpw")).replace(postgres.password, "not-the-password")
    course = build_course(tmp_path / "wrong", wrong, labs=())
    done = subprocess.run([sys.executable, "-m", "gradekit", "report", "--course", str(course.root)],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "refused the user or password" in lines[0], done.stderr
    assert "not-the-password" not in done.stderr and "[SQL" not in done.stderr

    server = PostgresServer()  # its own: stopped half way through the term
    try:
        course = build_course(tmp_path / "stopped", server.create_database("term"), labs=("tiny",))
    finally:
        server.stop()
    done = subprocess.run([sys.executable, "-m", "gradekit", "report", "--course", str(course.root)],
                          capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1 and "cannot be reached" in lines[0], done.stderr
    assert server.password not in done.stderr
