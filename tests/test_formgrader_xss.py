"""End to end: a hostile submission's payloads do not run in the formgrader or nbgrader's feedback.

A scratch course (the tiny `double` lab plus a written answer) gets a submission whose code cell
displays <script>, <img onerror>, an SVG with <script>/onload, application/javascript and a
text/markdown <img onerror>, and whose written answer (and a markdown cell the student added)
holds <script>/<img onerror>. It is graded with plain `nbgrader autograde`, then rendered exactly as
nbgrader's formgrader renders a submission (nbconvert HTMLExporter, template `formgrade`) and as
`nbgrader generate_feedback` renders feedback, before and after `neutralize_autograded`. Each page
is loaded in headless Chromium; every payload sets an attribute `ran-<name>` on <body> (built by
string concatenation, so the attribute name appears in the DOM only if the payload ran).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbconvert.exporters import HTMLExporter
from traitlets.config import Config

from gradekit.authoring import notebooks as authoring
from gradekit.course.directory import REPO_ROOT, Course
from gradekit.course.safe_text import NeutralizeStudentContent, neutralize_autograded

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from tiny_course import LAB, NOTEBOOK, SOLUTION, TESTS  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("formgrader_xss")]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STUDENT = "mallory"


def ran(name: str) -> str:
    """JavaScript that marks <body> with `ran-<name>`; the marker name is never in the source."""
    return f"document.body.setAttribute('ran-'+'{name}','1')"


HTML_SCRIPT = f"<script>{ran('html-script')}</script>"
HTML_IMG = f'<img src=x onerror="{ran("html-img")}">'
SVG_PAYLOAD = (f'<svg xmlns="http://www.w3.org/2000/svg" onload="{ran("svg-onload")}">'
               f'<script>{ran("svg-script")}</script></svg>')
MARKDOWN_IMG = f'<img src=x onerror="{ran("markdown-output")}">'
FAKE_PNG = {"image/png": f'"><img src=x onerror="{ran("fake-png")}">'}
CODE_PAYLOADS = "\n".join([  # repr() keeps the quoting right
    "from IPython.display import HTML, SVG, Javascript, Markdown, display",
    f"display(HTML({HTML_SCRIPT!r}))",
    f"display(HTML({HTML_IMG!r}))",
    f"display(SVG({SVG_PAYLOAD!r}))",
    f"display(Javascript({ran('javascript')!r}))",
    f"display(Markdown({MARKDOWN_IMG!r}))",
    f"display({FAKE_PNG!r}, raw=True)",
])
WRITTEN_PAYLOAD = (f"My explanation. <script>{ran('answer-script')}</script> "
                   f'<img src=x onerror="{ran("answer-img")}"> and `x < y`.')
ADDED_CELL_PAYLOAD = f'A cell I added: <img src=x onerror="{ran("added-cell")}">'
MARKER = re.compile(r"\bran-([a-z-]+)=")


def build_course(root: Path) -> Course:
    """The tiny lab with a manually graded written answer (a markdown solution cell)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    cells = [
        authoring.markdown("# Double"),
        authoring.readonly("imports", "import torch"),
        authoring.checks_cell(),
        authoring.answer("double", SOLUTION),
        authoring.tests("test_double", 3, TESTS),
        authoring.written("explain", 2, "Doubling multiplies by two."),
    ]
    authoring.write_notebook(root / "source" / LAB / f"{NOTEBOOK}.ipynb", cells, "tiny")
    course = Course(root)
    # nbgrader runs `alembic` from PATH when it creates a gradebook: use the venv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = course.nbgrader("generate_assignment", LAB, "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return course


def submit(course: Course, student: str, hostile: bool) -> None:
    nb = nbformat.read(course.release / LAB / f"{NOTEBOOK}.ipynb", as_version=4)
    if hostile:
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id == "double":
                solution = [line for line in SOLUTION.splitlines() if "### " not in line]
                cell.source = "\n".join(solution) + "\n" + CODE_PAYLOADS
            elif grade_id == "explain":
                cell.source = WRITTEN_PAYLOAD
        nb.cells.append(authoring.markdown(ADDED_CELL_PAYLOAD))
    path = course.submitted / student / LAB / f"{NOTEBOOK}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def autograded_path(course: Course, student: str) -> Path:
    return course.autograded / student / LAB / f"{NOTEBOOK}.ipynb"


def render_formgrade(notebook: Path, out: Path, student: str) -> Path:
    """The formgrader's SubmissionHandler page, offline: same exporter config, same resources."""
    from nbgrader.server_extensions.formgrader import handlers

    config = Config()  # FormgradeExtension.build_extra_config
    config.HTMLExporter.template_name = "formgrade"
    config.HTMLExporter.extra_template_basedirs = [handlers.template_path]
    # base_url points at nbgrader's own static files, so jQuery and the formgrader's scripts load as
    # in the real formgrader (an application/javascript output needs jQuery's `$`).
    base_url = Path(handlers.template_path).parent.parent.as_uri()
    resources = {"assignment_id": LAB, "notebook_id": NOTEBOOK, "submission_id": "x", "index": 0, "total": 1,
                 "base_url": base_url, "student": student, "last_name": None, "first_name": None,
                 "notebook_path": f"/autograded/{student}/{LAB}/{NOTEBOOK}.ipynb"}
    page, _ = HTMLExporter(config=config).from_filename(str(notebook), resources=resources)
    out.write_text(page, encoding="utf-8")
    return out


def render_feedback(course: Course, student: str, out: Path) -> Path:
    """nbgrader's own `generate_feedback` page for the student."""
    result = course.nbgrader("generate_feedback", LAB, "--student", student, "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    shutil.copy(course.feedback / student / LAB / f"{NOTEBOOK}.html", out)
    return out


def payloads_that_ran(page: Path) -> set[str]:
    """Load the page in headless Chromium (no network: every host resolves to nothing)."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--allow-file-access-from-files", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert "<body" in result.stdout, result.stderr[-2000:]
    body_tag = re.search(r"<body[^>]*>", result.stdout).group(0)
    return set(MARKER.findall(body_tag))


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("xss")
    course = build_course(root / "course")
    submit(course, STUDENT, hostile=True)
    submit(course, "blank", hostile=False)
    result = course.nbgrader("autograde", LAB, "--create", "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = root / "pages"
    out.mkdir()
    found = {"formgrade-unprotected": render_formgrade(autograded_path(course, STUDENT),
                                                       out / "formgrade-unprotected.html", STUDENT),
             "feedback-unprotected": render_feedback(course, STUDENT, out / "feedback-unprotected.html")}
    blank_before = autograded_path(course, "blank").read_bytes()
    assert neutralize_autograded(course, LAB, STUDENT) == [autograded_path(course, STUDENT)]
    neutralize_autograded(course, LAB, "blank")
    found["formgrade"] = render_formgrade(autograded_path(course, STUDENT), out / "formgrade.html", STUDENT)
    found["feedback"] = render_feedback(course, STUDENT, out / "feedback.html")
    found["course"] = course.root  # type: ignore[assignment]
    found["blank-unchanged"] = nbformat.reads(blank_before.decode(), as_version=4) == \
        nbformat.read(autograded_path(course, "blank"), as_version=4)  # type: ignore[assignment]
    return found


needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs it)")


@needs_chromium
def test_payloads_run_on_the_unprotected_pages(pages):
    """Without the preprocessor the payloads do run: the browser check below proves something."""
    formgrade = payloads_that_ran(pages["formgrade-unprotected"])
    feedback = payloads_that_ran(pages["feedback-unprotected"])
    written = {"answer-script", "answer-img", "added-cell"}
    outputs = {"html-script", "html-img", "markdown-output"}
    # application/javascript needs jQuery, which the formgrader page loads (offline, feedback cannot)
    assert written | outputs | {"javascript"} <= formgrade, formgrade
    assert written | outputs <= feedback, feedback


@needs_chromium
@pytest.mark.parametrize("name", ["formgrade", "feedback"])
def test_no_payload_runs_after_neutralizing(pages, name):
    assert payloads_that_ran(pages[name]) == set()


def test_answer_stays_readable_and_blank_answer_untouched(pages):
    page = pages["formgrade"].read_text(encoding="utf-8").replace("\u200b", "")
    assert "My explanation. &lt;script&gt;" in page and "<code>x &lt; y</code>" in page
    assert "&lt;IPython.core.display.HTML object&gt;" in page  # the output's own text/plain
    assert "[png output removed by the grader]" in page  # a "PNG" that is not one
    assert pages["blank-unchanged"] is True


# nbgrader's default autograde preprocessors, then ours (what an instructor adds to nbgrader_config.py).
AUTOGRADE_CONFIG = """
from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, Execute, IgnorePattern,
                                    LimitOutput, SaveAutoGrades)
from gradekit.course.safe_text import NeutralizeStudentContent
c.Autograde.autograde_preprocessors = [Execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                       SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
                                       NeutralizeStudentContent]
"""


def test_autograde_preprocessor_list_is_nbgraders_default_plus_ours():
    from nbgrader.converters import Autograde

    namespace: dict = {"c": Config()}
    exec(AUTOGRADE_CONFIG, namespace)
    configured = namespace["c"].Autograde.autograde_preprocessors
    assert configured[:-1] == Autograde().autograde_preprocessors
    assert configured[-1] is NeutralizeStudentContent


def test_preprocessor_can_run_inside_nbgrader_autograde(pages, tmp_path):
    """The other integration: NeutralizeStudentContent last in Autograde.autograde_preprocessors.

    Grades are saved before it runs, so the blank written answer still scores "no response"
    (0 points, nothing to grade by hand) and the hostile one still needs manual grading.
    """
    from nbgrader.api import Gradebook

    course = Course(tmp_path / "course")
    shutil.copytree(pages["course"], course.root, ignore=shutil.ignore_patterns("autograded", "feedback"))
    course.gradebook.unlink()
    result = course.nbgrader("generate_assignment", LAB, "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    with (course.root / "nbgrader_config.py").open("a") as config:
        config.write(AUTOGRADE_CONFIG)
    result = course.nbgrader("autograde", LAB, "--create", "--force", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    hostile = nbformat.read(autograded_path(course, STUDENT), as_version=4)
    assert all(set(o.get("data", {})) <= {"text/plain", "image/png", "image/jpeg"}
               for cell in hostile.cells for o in cell.get("outputs", []))
    with Gradebook(course.db_url) as gradebook:
        grades = {(s, g.name): g for s in (STUDENT, "blank")
                  for g in gradebook.find_submission_notebook(NOTEBOOK, LAB, s).grades}
        assert grades[("blank", "explain")].auto_score == 0 and not grades[("blank", "explain")].needs_manual_grade
        assert grades[(STUDENT, "explain")].needs_manual_grade
        assert grades[(STUDENT, "test_double")].score == 3
