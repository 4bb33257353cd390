"""Untrusted text from submissions, made safe for the instructor's terminal, spreadsheets and browser.

Everything in a student's notebook is untrusted: outputs, written answers, file names, kernelspec
names, error messages. Three sinks matter:

* the terminal: escape sequences can clear the screen, rewrite earlier lines, set the window
  title or, on some terminals, write files; `\\r` and bidi overrides make a line read differently
  from what it is. `terminal_safe` removes all of that.
* spreadsheets: a CSV cell starting with `=`, `+`, `-` or `@` is a formula (`=HYPERLINK(...)`,
  DDE). `csv_safe` quotes it.
* the browser: nbgrader's formgrader and its `generate_feedback` render the autograded notebook
  with nbconvert, which inserts text/html, application/javascript and markdown answers as raw
  HTML. `NeutralizeStudentContent` rewrites the autograded notebook so that nothing in it can
  run, and `neutralize_autograded` applies it to one student's autograded notebooks.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import compute_checksum

from gradekit.course.directory import Course

# ---------------------------------------------------------------- terminal and CSV

# Escape sequences first (as a whole, so no parameters are left behind): CSI (ESC [ or 8-bit
# 0x9B) ... final byte; OSC/DCS/SOS/PM/APC (ESC ] P X ^ _, or 8-bit) ... BEL or ST; any other
# ESC + one character.
ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c|$)"
    r"|\x1b.?",
    re.DOTALL)
# Newlines, tabs, CR and the Unicode line/paragraph separators: one line stays one line.
LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x85\u2028\u2029]")
# The rest of C0, DEL, C1, and bidi controls (embeddings/overrides U+202A-202E, isolates
# U+2066-2069, and the marks U+200E, U+200F, U+061C, which reorder text the same way).
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# What makes a spreadsheet cell a formula (fullwidth forms too: some spreadsheets normalise them).
FORMULA_START = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
ELLIPSIS = "…"


def _strip_controls(text: str) -> str:
    text = ESCAPE_SEQUENCE.sub("", str(text))
    return CONTROLS.sub("", LINE_BREAKS.sub(" ", text))


def _truncate(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:max(limit - 1, 0)] + ELLIPSIS


def multiline_safe(text: str) -> str:
    """Like `terminal_safe` but keeps line breaks (`\r` becomes one) and tabs, and does not truncate.

    For text shown in a <pre> block or printed as several lines: escape sequences, other control
    characters and bidi overrides go, so it reads in a page or a terminal as it really is.
    """
    text = ESCAPE_SEQUENCE.sub("", str(text)).replace("\r\n", "\n").replace("\r", "\n")
    return CONTROLS.sub(lambda m: m.group(0) if m.group(0) in "\n\t" else "", text)


def terminal_safe(text: str, limit: int = 300) -> str:
    """One printable line: no escape sequences, control or bidi characters; at most `limit` chars."""
    return _truncate(_strip_controls(text), limit)


def csv_safe(text: str, limit: int | None = None) -> str:
    """A CSV field a spreadsheet shows as text: controls stripped, formulas quoted with a leading '."""
    raw = str(text)
    cleaned = _truncate(_strip_controls(raw), limit)
    # A leading tab or CR is a formula trigger too (they become spaces here, but check the original).
    if raw[:1] in ("\t", "\r") or cleaned.lstrip(" ").startswith(FORMULA_START):
        return "'" + cleaned
    return cleaned


# nbgrader's formgrader writes the student id into its page unescaped (formgrade_macros.html.j2,
# `{{ resources.student }}`), and ids are folder names under submitted/: only plain ids are safe.
SAFE_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")


def is_safe_student_id(student: str) -> bool:
    """Whether a student id (a submitted/ folder name) is safe for terminals, CSV and nbgrader's pages."""
    return SAFE_STUDENT_ID.fullmatch(student) is not None


# ---------------------------------------------------------------- notebooks for the browser

# Output MIME types nbconvert renders without running anything: text/plain is HTML-escaped,
# PNG/JPEG go into <img src="data:..."> (and are checked to be real images below). Everything
# else (text/html, image/svg+xml, application/javascript, text/markdown, text/latex via MathJax,
# application/vnd.* widget and JSON views, PDF) is dropped.
SAFE_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")
IMAGE_SIGNATURES = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",)}
REMOVED_NOTICE = "[{kind} output removed by the grader]"
# Written answers: an invisible zero-width space after every '<' means neither the markdown
# renderer nor the browser sees a tag, comment or autolink (`<` followed by a non-letter is text in
# both), and after ']' before '(' or ':' it means no markdown link or link definition (so no
# `javascript:` URL), and after the backslash of MathJax's \href, \url, \style, \class, \cssId
# (a clickable javascript: link, page styling). The answer reads exactly as written, code spans
# included, and the rewrite does not depend on parsing markdown the way the renderer does.
ZWSP = "\u200b"
INERT_MARKDOWN = re.compile(r"(<|\](?=[(:])|\\(?=(?:href|url|style|class|cssId)\b))(?!\u200b)")


def inert_markdown(source: str) -> str:
    """Markdown whose raw HTML and links render as plain text; idempotent, and unchanged without any."""
    return INERT_MARKDOWN.sub(lambda m: m.group(1) + ZWSP, source)


def _valid_image(mime: str, data: object) -> str | None:
    """The image's base64 (canonical) if it decodes to a real PNG/JPEG, else None."""
    text = "".join(data) if isinstance(data, list) else data
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(IMAGE_SIGNATURES[mime]):
        return None
    return base64.b64encode(raw).decode("ascii")


def _image_metadata(metadata: dict, mime: str) -> dict:
    """Only numeric width/height survive (nbconvert writes them into the <img> tag)."""
    kept = {}
    sizes = metadata.get(mime) if isinstance(metadata.get(mime), dict) else {}
    for key in ("width", "height"):
        value = sizes.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 100_000:
            kept[key] = value
    return kept


def neutralize_output(output: NotebookNode) -> NotebookNode:
    """A display_data/execute_result output reduced to text/plain and verified PNG/JPEG."""
    if "data" not in output:
        return output  # stream and error outputs: nbconvert HTML-escapes them
    data, metadata = output.get("data") or {}, output.get("metadata") or {}
    kept: dict = {}
    new_metadata: dict = {}
    removed = [mime for mime in data if mime not in SAFE_MIME_TYPES]
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            image = _valid_image(mime, data[mime])
            if image is None:
                removed.append(mime)
                continue
            kept[mime] = image
            if sizes := _image_metadata(metadata, mime):
                new_metadata[mime] = sizes
    plain = data.get("text/plain")
    if isinstance(plain, list):
        plain = "".join(plain)
    if isinstance(plain, str):
        kept["text/plain"] = plain
    elif not kept:
        kind = removed[0].split("/")[-1].split("+")[0] if removed else "rich"
        kept["text/plain"] = REMOVED_NOTICE.format(kind=kind)
    output["data"] = nbformat.from_dict(kept)
    output["metadata"] = nbformat.from_dict(new_metadata)
    return output


def _trusted_markdown(cell: NotebookNode) -> bool:
    """An instructor's locked markdown cell, restored by nbgrader's OverwriteCells.

    OverwriteCells sets the checksum from the gradebook and puts back the source of locked cells,
    so in an *autograded* notebook a locked, non-answer cell whose checksum matches is exactly the
    instructor's text. Everything else (answers, plain cells a student could edit or add) is not.
    """
    meta = cell.metadata.get("nbgrader") or {}
    if not meta.get("locked") or meta.get("solution") or not meta.get("grade_id") or not meta.get("checksum"):
        return False
    try:
        return compute_checksum(cell) == meta["checksum"]
    except (KeyError, TypeError, ValueError):
        return False


class NeutralizeStudentContent(NbGraderPreprocessor):
    """Make an autograded notebook safe to render as HTML (formgrader, nbgrader feedback).

    * every output of every cell (test cells too: student code runs there) keeps only text/plain
      and PNG/JPEG images that really are PNG/JPEG;
    * written answers and other student-editable markdown cells lose their attachments, and their
      raw HTML and links become plain text (`inert_markdown`); a blank answer has no '<' and stays
      byte for byte the same, so nbgrader's checksum still says "no response";
    * raw cells are not rendered as HTML, and notebook-level widget state (script) is dropped.
    Idempotent. Run it after SaveAutoGrades (it changes what nbgrader would checksum).
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            self.neutralize_cell(cell)
        return nb, resources

    def neutralize_cell(self, cell: NotebookNode) -> None:
        if cell.cell_type == "code":
            cell.outputs = [neutralize_output(output) for output in cell.get("outputs", [])]
        elif cell.cell_type == "markdown":
            if _trusted_markdown(cell):
                return
            cell.pop("attachments", None)
            cell.source = inert_markdown(cell.source)
        elif cell.cell_type == "raw":
            # nbconvert renders a raw cell of format text/html into the page.
            cell.metadata.pop("raw_mimetype", None)
            cell.metadata.pop("format", None)
            cell.pop("attachments", None)


def neutralize_notebook(nb: NotebookNode) -> NotebookNode:
    """`NeutralizeStudentContent` on a notebook in memory (returns the same, modified, notebook)."""
    NeutralizeStudentContent().preprocess(nb, {})
    return nb


def neutralize_autograded(course: Course, lab: str, student: str) -> list[Path]:
    """Neutralize autograded/<student>/<lab>/*.ipynb in place (after scoring); returns the notebooks.

    The formgrader and `nbgrader generate_feedback` both render these files, so this protects both.
    """
    folder = course.autograded / student / lab
    done = []
    for path in sorted(folder.glob("*.ipynb")):
        if path.is_symlink() or not path.is_file():
            continue
        nb = nbformat.read(path, as_version=4)
        nbformat.write(neutralize_notebook(nb), path)
        done.append(path)
    return done
