"""`similarity`: which students' answers look alike, cell by cell: a flag for the instructor, never a grade.

Per answer cell (a code cell whose nbgrader metadata says `solution`, named by its `grade_id`) and per pair of
students, a score in [0, 1] that survives renamed variables, changed comments and reordered statements:

* the cell is tokenised with Python's `tokenize`; comments, docstrings (a string that is a statement of its
  own) and IPython lines (`%magic`, `!shell`) are dropped; every name that is not a keyword or a builtin
  becomes `V`, every number `N`, every string `S`; operators, keywords, builtins and the block structure stay;
* the token stream is cut into k-grams of `K` tokens, hashed (blake2b: the same in every run, see
  `kgram_hashes`) and winnowed (copydetect's `winnow`): the cell's fingerprints. A reordered statement only
  changes the k-grams across its edges;
* boilerplate is removed from every student's fingerprints: every k-gram of the release's starter code of the
  same cell, and of every code cell of the lecture notebooks (notebooks/*.ipynb). What the students were
  given or shown is no evidence; a student who only kept the starter code has nothing left and is never
  compared. A cell with fewer than `MIN_FINGERPRINTS` fingerprints left is not compared either: it is too
  short to tell copying from the one obvious answer;
* score(a, b) = |A ∩ B| / max(|A|, |B|): the *smaller* of the two shares of fingerprints shared (the minimum
  of both directions), so a short answer contained in a long one is not a match.

A pair's score is its highest cell score; a pair is flagged when that is at or above the threshold
(course.toml `[similarity] threshold`, default 0.8), with the cells at or above it. Written to
reports/<lab>/similarity.csv (flagged pairs, ranked) and reports/<lab>/similarity.html (the flagged cells
side by side, every student text escaped by the template's autoescape).

Cost: each student-cell is fingerprinted once; pairs compare Python sets, and only pairs whose sizes could
reach the threshold are intersected (|A ∩ B| <= min(|A|, |B|)), so 500 students x 15 cells takes seconds.

Why not copydetect's `CodeFingerprint` / `compare_files`: they read files (or a stream) per document and
compare with numpy per pair (too slow for 125 000 pairs per cell), and their boilerplate removal
(`np.intersect1d(..., assume_unique=True)` on hashes that may repeat) drops repeated fingerprints that are
not boilerplate. Boilerplate here is a set difference against *every* k-gram of the given code (not only its
winnowed ones: winnowing picks different k-grams in a different document).

Submissions are untrusted: a file is read by the grader's own bounded reader (size, encoding, JSON, nbformat
checks), a cell over `MAX_CELL_CHARS` is skipped, and whatever cannot be read is skipped with one line.
"""

from __future__ import annotations

import builtins
import csv
import io
import keyword
import tokenize
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import IPYTHON_LINE, grade_id_of, is_answer_cell, is_code, nbgrader_meta
from gradekit.course.directory import Course
from gradekit.course.exits import UsageError
from gradekit.course.files import atomic_open, write_text
from gradekit.course.safe_text import csv_safe, is_safe_student_id, multiline_safe, terminal_safe
from gradekit.course.settings import similarity_threshold
from gradekit.delivery import pages
from gradekit.staging.repair import MAX_NOTEBOOK_BYTES, InvalidSubmission, read_notebook_dict
from gradekit.staging.sanitize import choose_notebook

K = 5  # tokens per k-gram: `V = V . V` is one; shorter runs match by chance between honest answers
WINDOW = 3  # winnowing window: any shared run of K + WINDOW - 1 = 7 tokens is always seen
MIN_FINGERPRINTS = 15  # fewer left after the boilerplate (about 30 tokens): too short to be evidence (a one-liner)
MAX_CELL_CHARS = 100_000  # a bigger cell is skipped (nbgrader cells are a few hundred characters)
MAX_SHOWN_CHARS = 10_000  # of a cell shown in the page
MAX_SHOWN_PAIRS = 200  # pairs shown side by side in the page (all of them are in the CSV)
LECTURES = "notebooks"  # the lecture notebooks, beside source/ and release/
CSV_HEADER = ["student_a", "student_b", "score", "cells"]

BUILTINS = frozenset(dir(builtins))
# Tokens with no meaning for similarity (comments are the point: students change them).
DROPPED = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER})
STATEMENT_START = frozenset({tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT})
FSTRING_START = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+: an f-string is many tokens
FSTRING_END = getattr(tokenize, "FSTRING_END", None)


# ---------------------------------------------------------------- normalised tokens and fingerprints


def _python_tokens(source: str) -> list[tokenize.TokenInfo]:
    """The cell's tokens, IPython lines blanked; code that stops parsing keeps the tokens before the error."""
    text = "\n".join("" if IPYTHON_LINE.match(line) else line for line in source.splitlines()) + "\n"
    tokens: list[tokenize.TokenInfo] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            tokens.append(token)
    except (tokenize.TokenError, SyntaxError):  # unclosed bracket or string, bad indentation: a student's draft
        pass
    return tokens


def _symbol(token: tokenize.TokenInfo) -> str | None:
    """What a token stands for once names, numbers and strings are normalised (None: not kept)."""
    kind, text = token.type, token.string
    if kind == tokenize.NAME:
        return text if keyword.iskeyword(text) or text in BUILTINS else "V"
    if kind == tokenize.NUMBER:
        return "N"
    if kind == tokenize.STRING:
        return "S"
    if kind == tokenize.OP:
        return text
    if kind == tokenize.NEWLINE:
        return ";"
    if kind == tokenize.INDENT:
        return "{"
    if kind == tokenize.DEDENT:
        return "}"
    if kind == tokenize.ERRORTOKEN:
        return None if not text.strip() else "?"
    return None


def normalised_tokens(source: str) -> list[str]:
    """The cell as normalised tokens: no comments, docstrings or IPython lines; names `V` (keywords and builtins
    kept), numbers `N`, strings `S`; `;` `{` `}` for the end of a statement and the blocks."""
    tokens = [t for t in _python_tokens(source) if t.type not in DROPPED]
    symbols: list[str] = []
    at_statement_start = True
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.type == tokenize.STRING and at_statement_start:
            end = index
            while end < len(tokens) and tokens[end].type == tokenize.STRING:
                end += 1
            if end == len(tokens) or tokens[end].type == tokenize.NEWLINE:
                index = end + 1  # a string on its own (docstring, or a comment in quotes) and its end of line
                continue
        if token.type == FSTRING_START:  # one `S` for the whole f-string, whatever it holds
            depth = 0
            while index < len(tokens):
                depth += (tokens[index].type == FSTRING_START) - (tokens[index].type == FSTRING_END)
                index += 1
                if depth == 0:
                    break
            symbols.append("S")
            at_statement_start = False
            continue
        at_statement_start = token.type in STATEMENT_START
        symbol = _symbol(token)
        if symbol is not None:
            symbols.append(symbol)
        index += 1
    return symbols


def kgram_hashes(symbols: list[str]) -> list[int]:
    """A hash of every run of K tokens: 52 bits of blake2b, the same in every run and process.

    Not copydetect's `hashed_kgrams`: it uses Python's `hash` of strings, salted per process, and winnowing
    keeps the smallest hashes, so the fingerprints (and the scores) would change from one run to the next.
    52 bits: copydetect's winnowing compares hashes as float64, which holds them exactly."""
    words = [symbol.encode() for symbol in symbols]
    return [int.from_bytes(blake2b(b"\x00".join(words[i:i + K]), digest_size=8).digest(), "little") >> 12
            for i in range(len(words) - K + 1)]


def fingerprints(source: str, *, every_kgram: bool = False) -> frozenset[int]:
    """The cell's winnowed k-gram hashes (`every_kgram`: all of them, for boilerplate)."""
    import numpy as np
    from copydetect.utils import winnow  # imports matplotlib: only when a report is made

    hashes = kgram_hashes(normalised_tokens(source))
    if every_kgram or not hashes:
        return frozenset(hashes)
    selected, _ = winnow(np.array(hashes, dtype=np.int64), WINDOW)
    return frozenset(selected.tolist())


def cell_score(a: frozenset[int], b: frozenset[int]) -> float:
    """The smaller share of fingerprints shared: |A ∩ B| / max(|A|, |B|), in [0, 1] (0 when either is empty)."""
    if not a or not b:
        return 0.0
    return len(a & b) / max(len(a), len(b))


# ---------------------------------------------------------------- reading notebooks


def _source(cell: Mapping[str, Any]) -> str | None:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        return "".join(source)
    return source if isinstance(source, str) else None


def answer_cells(cells: Iterable[Any], ids: Mapping[str, str] | None = None) -> dict[str, str]:
    """grade_id -> source of every code answer cell (the first of a grade id), from untrusted cells.

    `ids` (cell id -> grade id, from the release) finds an answer cell whose nbgrader metadata was dropped
    (Colab may drop it) but whose cell id was kept."""
    answers: dict[str, str] = {}
    for cell in cells:
        if not isinstance(cell, Mapping) or not is_code(cell):
            continue
        if is_answer_cell(cell):
            grade_id = grade_id_of(cell)
        elif ids and not nbgrader_meta(cell) and isinstance(cell.get("id"), str):
            grade_id = ids.get(cell["id"], "")
        else:
            continue
        source = _source(cell)
        if grade_id and source is not None and grade_id not in answers:
            answers[grade_id] = source
    return answers


def answer_cell_ids(cells: Iterable[Any]) -> dict[str, str]:
    """cell id -> grade id of the answer cells of a (release) notebook."""
    return {cell["id"]: grade_id_of(cell) for cell in cells
            if is_code(cell) and is_answer_cell(cell) and grade_id_of(cell) and isinstance(cell.get("id"), str)}


def _release_notebooks(course: Course, lab: str) -> list[Path]:
    folder = course.release / lab
    labs = {p.name for p in course.release.iterdir() if p.is_dir()} if course.release.is_dir() else set()
    notebooks = sorted(folder.glob("*.ipynb")) if lab in labs else []
    if not notebooks:
        raise UsageError(f"{lab!r} is not released in {course.release}: run `make release` first")
    return notebooks


def _lecture_boilerplate(course: Course) -> frozenset[int]:
    """Every k-gram of every code cell of the lecture notebooks (trusted: the instructor's)."""
    found: set[int] = set()
    for path in sorted((course.root / LECTURES).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            source = _source(cell) if is_code(cell) else None
            if source and len(source) <= MAX_CELL_CHARS:
                found |= fingerprints(source, every_kgram=True)
    return frozenset(found)


@dataclass
class Submission:
    student: str
    sources: dict[str, str]  # grade_id -> what the page shows (controls removed, cut)
    prints: dict[str, frozenset[int]]  # grade_id -> fingerprints without boilerplate


def _read_submission(folder: Path, canonical: Path,
                     release_nb: NotebookNode) -> tuple[dict[str, str] | None, list[str]]:
    """The answer cells of a student's notebook (the one `grade` would choose; None: none could be read), and
    one line per file skipped. Raises InvalidSubmission for a chosen file that is not a readable notebook."""
    found = sorted(p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    # Sizes first: choosing among several notebooks reads them whole.
    candidates = [p for p in found if p.stat().st_size <= MAX_NOTEBOOK_BYTES]
    problems = [f"{terminal_safe(p.name, 80)} skipped ({p.stat().st_size:,} bytes, over {MAX_NOTEBOOK_BYTES:,})"
                for p in found if p not in candidates]
    if not candidates:
        return None, problems or ["no notebook"]
    # The rule `grade` applies: an edited notebook beats a copy of the release, then the lab's name, the latest.
    chosen, _why = choose_notebook(candidates, folder / canonical.name, release_nb)
    if chosen is None:
        return None, ["no notebook"]
    notebook = read_notebook_dict(chosen, [])  # the grader's bounded reader: raises InvalidSubmission
    return answer_cells(notebook.get("cells", []), answer_cell_ids(release_nb.cells)), problems


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class FlaggedPair:
    student_a: str
    student_b: str
    score: float  # the highest cell score
    cells: tuple[tuple[str, float], ...]  # (grade id, score) of the cells at or above the threshold, highest first


@dataclass
class SimilarityReport:
    lab: str
    threshold: float
    students: int  # submissions read and compared
    cells: list[str]  # the answer cells compared, in notebook order
    pairs: list[FlaggedPair] = field(default_factory=list)  # ranked, highest score first
    skipped: list[str] = field(default_factory=list)  # one line per file or cell not read
    csv: Path | None = None
    html: Path | None = None


def similarity_files(course: Course, lab: str) -> tuple[Path, Path]:
    folder = course.lab_reports(lab)
    return folder / "similarity.csv", folder / "similarity.html"


def compare(prints: Mapping[str, Mapping[str, frozenset[int]]], cells: Iterable[str],
            threshold: float) -> dict[tuple[str, str], dict[str, float]]:
    """(student a, student b) -> {grade id: score} of every cell at or above `threshold`.

    Per cell, students are sorted by their number of fingerprints: a pair can only reach the threshold when
    the smaller set holds at least `threshold` times the larger, so each student is intersected only with
    the few sizes that could."""
    flagged: dict[tuple[str, str], dict[str, float]] = {}
    for grade_id in cells:
        ranked = sorted(((len(p[grade_id]), student, p[grade_id]) for student, p in prints.items()
                         if len(p.get(grade_id, ())) >= MIN_FINGERPRINTS), key=lambda entry: entry[:2])
        sizes = [size for size, _, _ in ranked]
        for i, (size, student, mine) in enumerate(ranked):
            reach = bisect_right(sizes, size / threshold)
            for larger, other, theirs in ranked[i + 1:reach]:
                score = len(mine & theirs) / larger
                if score >= threshold:
                    flagged.setdefault(tuple(sorted((student, other))), {})[grade_id] = score
    return flagged


def write_similarity(course: Course, lab: str, *, threshold: float | None = None) -> SimilarityReport:
    """Compare every submission of `lab` cell by cell; write reports/<lab>/similarity.csv and .html.

    `threshold` (0 < threshold <= 1) overrides course.toml's `[similarity] threshold`. Only reads the
    submissions: the gradebook and the grades are never touched."""
    if threshold is None:
        threshold = similarity_threshold(course.root)
    elif not 0 < threshold <= 1:
        raise UsageError(f"threshold {threshold!r}: a share above 0 and at most 1")
    release_paths = _release_notebooks(course, lab)
    release_nbs = [nbformat.read(path, as_version=4) for path in release_paths]  # the instructor's: trusted
    release: dict[str, str] = {}
    for release_nb in reversed(release_nbs):  # the first notebook wins a grade id
        release.update(answer_cells(release_nb.cells))
    cells = list(release)
    lectures = _lecture_boilerplate(course)
    boilerplate = {grade_id: lectures | fingerprints(source, every_kgram=True) for grade_id, source in release.items()}
    report = SimilarityReport(lab, float(threshold), 0, cells)

    submissions: dict[str, Submission] = {}
    folders = sorted(course.submitted.glob(f"*/{lab}")) if course.submitted.is_dir() else []
    for folder in folders:  # submitted/<student>/<lab>/
        student = folder.parent.name
        if not folder.is_dir() or folder.is_symlink() or folder.parent.is_symlink():
            continue
        if not is_safe_student_id(student):  # the grader skips these too: not a student id
            report.skipped.append(f"{terminal_safe(student, 60)}: not a plain student id (folder skipped)")
            continue
        try:
            answers, problems = _read_submission(folder, release_paths[0], release_nbs[0])
        except InvalidSubmission as error:
            answers, problems = None, [f"not a readable notebook: {error}"]
        except (OSError, ValueError, TypeError, RecursionError) as error:  # unreadable file, damaged JSON
            answers, problems = None, [f"not a readable notebook ({type(error).__name__})"]
        report.skipped += [f"{student}: {terminal_safe(problem, 200)}" for problem in problems]
        if answers is None:
            continue
        if not answers:
            report.skipped.append(f"{student}: no answer cell of the release in the notebook (not compared)")
            continue
        submission = Submission(student, {}, {})
        for grade_id in cells:
            source = answers.get(grade_id)
            if source is None:
                continue
            if len(source) > MAX_CELL_CHARS:
                report.skipped.append(f"{student}: cell {grade_id} skipped ({len(source):,} characters, over "
                                      f"{MAX_CELL_CHARS:,})")
                continue
            submission.prints[grade_id] = fingerprints(source) - boilerplate[grade_id]
            submission.sources[grade_id] = multiline_safe(source[:MAX_SHOWN_CHARS])
        submissions[student] = submission
    report.students = len(submissions)

    flagged = compare({s: sub.prints for s, sub in submissions.items()}, cells, report.threshold)
    pairs = [FlaggedPair(a, b, max(scores.values()),
                         tuple(sorted(scores.items(), key=lambda item: (-item[1], cells.index(item[0])))))
             for (a, b), scores in flagged.items()]
    report.pairs = sorted(pairs, key=lambda pair: (-pair.score, pair.student_a, pair.student_b))
    report.csv, report.html = similarity_files(course, lab)
    _write_csv(report)
    write_text(report.html, render_page(report, submissions))
    return report


def _write_csv(report: SimilarityReport) -> None:
    with atomic_open(report.csv, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_HEADER)
        for pair in report.pairs:
            writer.writerow([csv_safe(pair.student_a), csv_safe(pair.student_b), f"{pair.score:.3f}",
                             csv_safe(";".join(grade_id for grade_id, _ in pair.cells))])


def render_page(report: SimilarityReport, submissions: Mapping[str, Submission]) -> str:
    """The page: plain values only (the template escapes every one of them)."""
    shown = [{"a": pair.student_a, "b": pair.student_b, "score": pair.score,
              "cells": [{"grade_id": grade_id, "score": score,
                         "a": submissions[pair.student_a].sources.get(grade_id, ""),
                         "b": submissions[pair.student_b].sources.get(grade_id, "")}
                        for grade_id, score in pair.cells]}
             for pair in report.pairs[:MAX_SHOWN_PAIRS]]
    return pages.render("similarity.html.j2", lab=report.lab, threshold=report.threshold, students=report.students,
                        cells=report.cells, pairs=shown, more=max(0, len(report.pairs) - MAX_SHOWN_PAIRS),
                        skipped=report.skipped, csv_name=report.csv.name if report.csv else "similarity.csv",
                        max_shown_chars=MAX_SHOWN_CHARS, min_fingerprints=MIN_FINGERPRINTS)
