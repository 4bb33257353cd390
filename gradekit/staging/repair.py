"""Prepare a submission for grading: load it safely and repair what Colab and LMSs break.

Interface used by `gradekit.grading.run` (stable):
    prepare_submission(path, release_nb) -> PreparedSubmission  (raises InvalidSubmission)
The submission file itself is never modified; the repaired notebook is a new object.

Colab ignores nbgrader's "locked" flags and may drop the nbgrader metadata, duplicate or delete
cells and change cell types. Plain nbgrader then grades 0 silently or aborts. Here every cell of
the submission is matched to the release notebook (by grade_id, then cell id, then content and
the names a cell defines, then position), the release's nbgrader metadata is put back, deleted
locked cells are re-inserted (nbgrader's OverwriteCells then restores their full source), and
duplicates are resolved. Every change is one line in `repairs`.
"""

from __future__ import annotations

import codecs
import copy
import difflib
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import defined_names, nbgrader_meta
from gradekit.staging.integrity import notebook_flags

MAX_NOTEBOOK_BYTES = 100 * 2**20  # beyond this we do not even read the file
STRIP_OUTPUTS_ABOVE_BYTES = 10 * 2**20  # outputs are dropped before parsing (grading clears them anyway)
LOCKED_SIMILARITY = 0.5  # a locked cell's source must be at least this close to the release to match
ANSWER_SIMILARITY = 0.6  # an answer cell that defines none of the expected names must be this close
CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
NON_PYTHON_KERNELS = ("ir", "julia", "javascript", "bash", "scala", "java", "octave", "matlab")


class InvalidSubmission(Exception):
    """A submission that cannot be graded; the message is the reason shown to the instructor."""


@dataclass
class PreparedSubmission:
    notebook: NotebookNode
    repairs: list[str] = field(default_factory=list)  # what was changed, one line each
    flags: list[str] = field(default_factory=list)  # suspected tampering, for the instructor


# ---------------------------------------------------------------- loading


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB"


def strip_outputs_raw(raw: bytes) -> tuple[bytes, int]:
    """Replace every `"outputs": [...]` array with `[]` without parsing the JSON (huge notebooks).

    JSON strings cannot contain an unescaped quote, so `"outputs"` followed by a colon is always a key.
    Returns the new bytes and how many bytes were removed.
    """
    key = re.compile(rb'"outputs"\s*:\s*\[')
    # strings and other text in one run, so that the loop below only steps over brackets
    token = re.compile(rb'(?:"[^"\\]*(?:\\.[^"\\]*)*"|[^\[\]"])+|[\[\]]', re.DOTALL)
    pieces, position, removed = [], 0, 0
    for match in key.finditer(raw):
        if match.start() < position:
            continue  # inside an array we already skipped
        depth, end = 1, None
        for tok in token.finditer(raw, match.end()):
            if tok.group() == b"[":
                depth += 1
            elif tok.group() == b"]":
                depth -= 1
                if depth == 0:
                    end = tok.end()
                    break
        if end is None:
            break  # truncated file: let the JSON parser report it
        pieces += [raw[position:match.end()], b"]"]
        removed += end - match.end() - 1
        position = end
    pieces.append(raw[position:])
    return b"".join(pieces), removed


def _decode(raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InvalidSubmission("the file is UTF-16 text, not UTF-8: re-save it from Jupyter or Colab "
                                "(File > Download > .ipynb)")
    if b"\x00" in raw[:65536]:
        raise InvalidSubmission("binary file, not a notebook (it contains NUL bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidSubmission(f"not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}): "
                                "the file was re-encoded, probably as Latin-1 by an editor; re-download "
                                "it from Colab or Jupyter") from None


def _check_notebook_dict(data: object) -> None:
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data):
        raise InvalidSubmission("valid JSON but not a Jupyter notebook (no cells)")
    major = data.get("nbformat")
    if not isinstance(major, int):
        raise InvalidSubmission("not a Jupyter notebook (no nbformat version)")
    if major < 4:
        raise InvalidSubmission(f"nbformat {major} notebook (IPython 3 or older): open it in a current "
                                "Jupyter or Colab and save it again (nbformat 4)")
    if major > 4:
        raise InvalidSubmission(f"nbformat {major} is newer than this grader understands (4.x)")
    if not isinstance(data.get("cells"), list) or not all(isinstance(c, dict) for c in data["cells"]):
        raise InvalidSubmission("not a Jupyter notebook (cells is not a list of cells)")
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    kernelspec = metadata.get("kernelspec") if isinstance(metadata.get("kernelspec"), dict) else {}
    language_info = metadata.get("language_info") if isinstance(metadata.get("language_info"), dict) else {}
    language = str(kernelspec.get("language") or language_info.get("name") or "").lower()
    kernel = str(kernelspec.get("name") or "").lower()
    if (language and language != "python") or kernel.startswith(NON_PYTHON_KERNELS):
        shown = kernelspec.get("display_name") or language or kernel
        raise InvalidSubmission(f"the notebook uses a {shown} kernel, not Python: in Colab choose "
                                "Runtime > Change runtime type > Python 3 and re-enter the answers")


def read_notebook_dict(path: Path, repairs: list[str]) -> dict:
    """The submission as a JSON dict, after the size, encoding and format checks."""
    if not path.is_file():
        raise InvalidSubmission("missing: no notebook was submitted")
    size = path.stat().st_size
    if size == 0:
        raise InvalidSubmission("empty file (0 bytes)")
    if size > MAX_NOTEBOOK_BYTES:
        raise InvalidSubmission(f"the file is {_megabytes(size)}, over the {_megabytes(MAX_NOTEBOOK_BYTES)} "
                                "limit (huge outputs?): clear all outputs (Edit > Clear all outputs) and "
                                "submit again")
    raw = path.read_bytes()
    if not raw.strip():
        raise InvalidSubmission("empty file (only whitespace)")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
        repairs.append("removed a UTF-8 byte-order mark")
    if size > STRIP_OUTPUTS_ABOVE_BYTES and b"\x00" not in raw[:65536]:
        raw, removed = strip_outputs_raw(raw)
        if removed:
            repairs.append(f"dropped {_megabytes(removed)} of cell outputs before parsing (file was "
                           f"{_megabytes(size)})")
    text = _decode(raw)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidSubmission(f"invalid JSON at line {error.lineno}, column {error.colno} ({error.msg}): "
                                "the file is damaged or truncated") from None
    except RecursionError:
        raise InvalidSubmission("invalid notebook: JSON nested too deeply") from None
    _check_notebook_dict(data)
    return data


def _new_cell_id(used: set[str]) -> str:
    while (candidate := uuid.uuid4().hex[:12]) in used:
        pass
    return candidate


def normalise_structure(data: dict, repairs: list[str]) -> NotebookNode:
    """An nbformat 4.5 NotebookNode: joined sources, unique valid cell ids, known cell types."""
    nb = nbformat.from_dict(data)
    nbformat.v4.rwbase.rejoin_lines(nb)
    nbformat.v4.rwbase.strip_transient(nb)
    nb.setdefault("metadata", NotebookNode())
    # Lossless normalisations (nbformat 4.x -> 4.5, fresh cell ids) are not reported as repairs:
    # every Colab notebook needs them and they change nothing the student wrote.
    nb.nbformat_minor = max(nb.get("nbformat_minor", 0), 5)
    used: set[str] = set()
    for cell in nb.cells:
        cell.setdefault("metadata", NotebookNode())
        cell.setdefault("source", "")
        if cell.get("cell_type") not in ("code", "markdown", "raw"):
            cell.cell_type = "markdown"
            repairs.append("turned a cell of unknown type into markdown")
        if cell.cell_type == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        cell_id = cell.get("id")
        if not (isinstance(cell_id, str) and CELL_ID.match(cell_id)) or cell_id in used:
            colab_id = cell.metadata.get("id")
            ok = isinstance(colab_id, str) and CELL_ID.match(colab_id) and colab_id not in used
            cell["id"] = colab_id if ok else _new_cell_id(used)
        used.add(cell["id"])
    _validate_or_fix(nb, repairs)
    return nb


def _validate_or_fix(nb: NotebookNode, repairs: list[str]) -> None:
    """nbformat schema validation, fixing what Colab and old editors typically get wrong."""
    fixes = [
        ("removed Colab's widget state (invalid)", lambda: nb.metadata.pop("widgets", None)),
        ("cleared invalid cell outputs (grading clears outputs anyway)", lambda: _clear_outputs(nb)),
        ("removed invalid cell attachments", lambda: [c.pop("attachments", None) for c in nb.cells]),
    ]
    for description, fix in [(None, None), *fixes]:
        if fix is not None:
            fix()
            repairs.append(description)
        try:
            nbformat.validate(nb)
            return
        except nbformat.ValidationError as error:
            last_error = error
    raise InvalidSubmission(f"invalid notebook structure: {last_error.message}")


def _clear_outputs(nb: NotebookNode) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None


def load_submission(path: Path, repairs: list[str] | None = None) -> NotebookNode:
    """Read, check and normalise a submission; raises InvalidSubmission with the reason."""
    repairs = [] if repairs is None else repairs
    return normalise_structure(read_notebook_dict(path, repairs), repairs)


# ---------------------------------------------------------------- matching cells to the release


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _similarity(a: str, b: str) -> float:
    """How alike two sources are (0..1): by lines for long cells (fast), by characters for short ones."""
    if a == b:
        return 1.0
    lines_a, lines_b = a.splitlines(), b.splitlines()
    sequences = (lines_a, lines_b) if min(len(lines_a), len(lines_b)) >= 4 else (a, b)
    matcher = difflib.SequenceMatcher(None, *sequences, autojunk=False)
    if matcher.real_quick_ratio() < LOCKED_SIMILARITY or matcher.quick_ratio() < LOCKED_SIMILARITY:
        return 0.0  # cannot reach any threshold: skip the quadratic part
    return matcher.ratio()


@dataclass
class ReleaseCell:
    index: int
    cell: NotebookNode
    grade_id: str | None
    kind: str  # "test", "readonly", "answer", "written", "plain"
    names: set[str]

    @property
    def locked(self) -> bool:
        return self.kind in ("test", "readonly")


def _kind(cell: NotebookNode) -> str:
    meta = nbgrader_meta(cell)
    if not meta.get("grade_id"):
        return "plain"
    if meta.get("solution"):
        return "written" if cell.cell_type == "markdown" else "answer"
    if meta.get("grade"):
        return "test"
    return "readonly"


def expected_names(cell: NotebookNode) -> set[str]:
    """What a release code cell defines; for a stub that sets variables, the `# name: ...` comments."""
    if cell.cell_type != "code":
        return set()
    return defined_names(cell.source) or set(re.findall(r"^#\s*([A-Za-z_]\w*)\s*:", cell.source, re.MULTILINE))


def describe_release(release_nb: NotebookNode) -> list[ReleaseCell]:
    return [ReleaseCell(index, cell, nbgrader_meta(cell).get("grade_id"), _kind(cell), expected_names(cell))
            for index, cell in enumerate(release_nb.cells)]


class Matcher:
    """Pairs submission cells with release cells; `pairs[sub_index] = release_index`."""

    def __init__(self, cells: list[NotebookNode], release: list[ReleaseCell]):
        self.cells = cells
        self.release = release
        self.sources = [_normalised(cell.source) for cell in cells]
        self._names: dict[int, set[str]] = {}
        self.pairs: dict[int, int] = {}
        self.how: dict[int, str] = {}  # release index -> how it was matched
        self.duplicates: list[int] = []  # submission indices to drop (redundant copies)
        self.extra_copies: set[int] = set()  # edited copies of a graded cell: kept as ordinary code

    @property
    def matched_release(self) -> set[int]:
        return set(self.pairs.values())

    def free(self, sub: int) -> bool:
        return sub not in self.pairs and sub not in self.duplicates and sub not in self.extra_copies

    def pair(self, sub: int, rel: int, how: str) -> None:
        self.pairs[sub] = rel
        self.how[rel] = how

    def edited(self, sub: int, rel: int) -> bool:
        return self.sources[sub] != _normalised(self.release[rel].cell.source)

    def names(self, sub: int) -> set[str]:
        if sub not in self._names:
            self._names[sub] = defined_names(self.cells[sub].source)
        return self._names[sub]

    def by_grade_id(self) -> list[str]:
        notes = []
        by_id = {r.grade_id: r for r in self.release if r.grade_id}
        groups: dict[str, list[int]] = {}
        for sub, cell in enumerate(self.cells):
            grade_id = nbgrader_meta(cell).get("grade_id")
            if grade_id in by_id:
                groups.setdefault(grade_id, []).append(sub)
        for grade_id, subs in groups.items():
            rel = by_id[grade_id]
            keeper = self._pick_keeper(subs, rel)
            self.pair(keeper, rel.index, "grade_id")
            for extra in subs:
                if extra == keeper:
                    continue
                if rel.locked or not self.edited(extra, rel.index):
                    self.duplicates.append(extra)
                    notes.append(f"removed a duplicate of {rel.kind} cell '{grade_id}' (cell {extra + 1})")
                else:
                    self.extra_copies.add(extra)
                    notes.append(f"'{grade_id}' appears {len(subs)} times: graded cell {keeper + 1}, the "
                                 f"other edited copy (cell {extra + 1}) runs as ordinary code")
        return notes

    def _pick_keeper(self, subs: list[int], rel: ReleaseCell) -> int:
        """Of several copies, the one the student edited (the last one if several were edited)."""
        if rel.locked:
            return subs[0]
        edited = [sub for sub in subs if self.edited(sub, rel.index)]
        return edited[-1] if edited else subs[0]

    def by_cell_id(self) -> None:
        by_id = {r.cell.get("id"): r for r in self.release if r.grade_id and r.cell.get("id")}
        for sub, cell in enumerate(self.cells):
            if not self.free(sub):
                continue
            for cell_id in (cell.get("id"), cell.metadata.get("id")):
                rel = by_id.get(cell_id)
                if rel is not None and rel.index not in self.matched_release \
                        and self._compatible(sub, rel) and self._plausible(sub, rel):
                    self.pair(sub, rel.index, "cell id")
                    break

    def _compatible(self, sub: int, rel: ReleaseCell) -> bool:
        """Cell types that can be the same cell: answers may have been turned into markdown/raw."""
        cell_type = self.cells[sub].cell_type
        if rel.kind in ("answer", "written"):
            return True
        return cell_type == rel.cell.cell_type or (rel.cell.cell_type == "code" and cell_type == "raw")

    def _plausible(self, sub: int, rel: ReleaseCell) -> bool:
        """A cell id is trusted for answers (edited by design); a locked cell's content must agree."""
        return rel.kind in ("answer", "written") or self._score(sub, rel) is not None

    def _score(self, sub: int, rel: ReleaseCell) -> tuple | None:
        """How well submission cell `sub` fits release cell `rel` (higher is better), None if it does not."""
        if rel.kind == "written":
            return None  # free text: only matched by position
        if rel.kind == "answer":
            covers = bool(rel.names) and rel.names <= self.names(sub)
            text = 0.0 if covers else _similarity(self.sources[sub], _normalised(rel.cell.source))
            if not covers and text < ANSWER_SIMILARITY:
                return None
            return (2, covers, self.edited(sub, rel.index), text)
        text = _similarity(self.sources[sub], _normalised(rel.cell.source))
        if text < LOCKED_SIMILARITY:
            return None
        return (1, True, False, text)

    def by_identical_content(self) -> None:
        """Locked cells the student did not touch: an exact (whitespace-normalised) copy of the release."""
        wanted = {_normalised(r.cell.source): r for r in self.release
                  if r.locked and r.index not in self.matched_release}
        for sub, source in enumerate(self.sources):
            rel = wanted.get(source)
            if rel is not None and self.free(sub) and rel.index not in self.matched_release \
                    and self._compatible(sub, rel):
                self.pair(sub, rel.index, "identical content")

    def by_content(self) -> None:
        candidates = []
        for rel in self.release:
            if not rel.grade_id or rel.index in self.matched_release:
                continue
            for sub in range(len(self.cells)):
                if self.free(sub) and self._compatible(sub, rel):
                    score = self._score(sub, rel)
                    if score is not None:
                        candidates.append((score, -abs(sub - rel.index), sub, rel.index))
        for score, _, sub, rel in sorted(candidates, reverse=True):
            if self.free(sub) and rel not in self.matched_release:
                how = "defined names" if score[0] == 2 and score[1] else "similar content"
                self.pair(sub, rel, how)

    def plain_anchors(self) -> None:
        """Unchanged instruction cells (markdown, given code) fix the positions of the others."""
        free_subs = [sub for sub in range(len(self.cells)) if self.free(sub)]
        plain = [r for r in self.release if r.kind == "plain"]
        keys_sub = [_normalised(self.cells[sub].source) for sub in free_subs]
        keys_rel = [_normalised(r.cell.source) for r in plain]
        blocks = difflib.SequenceMatcher(None, keys_sub, keys_rel, autojunk=False).get_matching_blocks()
        for block in blocks:
            for offset in range(block.size):
                sub, rel = free_subs[block.a + offset], plain[block.b + offset]
                if keys_rel[block.b + offset]:
                    self.pair(sub, rel.index, "anchor")

    def by_position(self) -> None:
        """Answer cells still unmatched take the first free cell between their matched neighbours."""
        sub_of = {rel: sub for sub, rel in self.pairs.items()}
        for rel in self.release:
            if rel.kind not in ("answer", "written") or rel.index in self.matched_release:
                continue
            before = max((sub_of[r] for r in sub_of if r < rel.index), default=-1)
            after = min((sub_of[r] for r in sub_of if r > rel.index), default=len(self.cells))
            for sub in range(before + 1, after):
                if self.free(sub) and self._compatible(sub, rel) and not nbgrader_meta(self.cells[sub]):
                    if rel.kind == "answer" and rel.names and self.cells[sub].cell_type == "code" \
                            and self._score(sub, rel) is None and self.cells[sub].source.strip():
                        continue  # a code cell that does not look like this answer is the student's own
                    self.pair(sub, rel.index, "position")
                    sub_of[rel.index] = sub
                    break

    def unedited_copies(self) -> list[str]:
        """Free cells identical to a matched graded/locked release cell are leftover copies: drop them."""
        notes = []
        sources = {_normalised(r.cell.source): r for r in self.release
                   if r.grade_id and r.index in self.matched_release and r.kind != "written"}
        for sub, cell in enumerate(self.cells):
            rel = sources.get(_normalised(cell.source))
            if self.free(sub) and rel is not None and cell.source.strip():
                self.duplicates.append(sub)
                notes.append(f"removed an unedited copy of {rel.kind} cell '{rel.grade_id}' (cell {sub + 1})")
        return notes


# ---------------------------------------------------------------- rebuilding the notebook


def _convert(cell: NotebookNode, cell_type: str) -> None:
    """Change a cell's type in place, keeping its source."""
    cell.cell_type = cell_type
    for key in ("outputs", "execution_count", "attachments"):
        cell.pop(key, None)
    if cell_type == "code":
        cell.outputs = []
        cell.execution_count = None


def _restore_metadata(cell: NotebookNode, rel: ReleaseCell) -> bool:
    """Put the release's nbgrader metadata and lock flags on `cell`; True when something changed."""
    before = (copy.deepcopy(cell.metadata.get("nbgrader")), cell.metadata.get("editable"),
              cell.metadata.get("deletable"))
    cell.metadata["nbgrader"] = copy.deepcopy(rel.cell.metadata["nbgrader"])
    for flag in ("editable", "deletable"):
        if flag in rel.cell.metadata:
            cell.metadata[flag] = rel.cell.metadata[flag]
        else:
            cell.metadata.pop(flag, None)
    after = (cell.metadata.get("nbgrader"), cell.metadata.get("editable"), cell.metadata.get("deletable"))
    return before != after


def _release_copy(rel: ReleaseCell, used_ids: set[str]) -> NotebookNode:
    cell = copy.deepcopy(rel.cell)
    if cell.get("id") in used_ids:
        cell["id"] = _new_cell_id(used_ids)
    used_ids.add(cell["id"])
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    return cell


def _order_locked_cells(cells: list[tuple[NotebookNode, int | None]], release: list[ReleaseCell]) -> list[str]:
    """Move a test/read-only cell that ended up above a graded cell it follows in the release."""
    notes = []
    moved = True
    while moved:
        moved = False
        positions = {rel: pos for pos, (_, rel) in enumerate(cells) if rel is not None}
        for rel_index, pos in sorted(positions.items()):
            if not release[rel_index].locked:
                continue
            earlier = [positions[r] for r in positions
                       if r < rel_index and release[r].grade_id and release[r].kind != "written"]
            if earlier and max(earlier) > pos:
                target = max(earlier)
                cells.insert(target + 1, cells.pop(pos))
                notes.append(f"moved {release[rel_index].kind} cell '{release[rel_index].grade_id}' below "
                             "the cells it depends on (it came before them)")
                moved = True
                break
    return notes


def _rebuild(nb: NotebookNode, matcher: Matcher, release: list[ReleaseCell], repairs: list[str]) -> None:
    restored: dict[str, list[str]] = {}
    entries: list[tuple[NotebookNode, int | None]] = []
    for sub, cell in enumerate(nb.cells):
        if sub in matcher.duplicates:
            continue
        rel_index = matcher.pairs.get(sub)
        rel = release[rel_index] if rel_index is not None else None
        if rel is None or not rel.grade_id:
            stale = cell.metadata.pop("nbgrader", None)
            if isinstance(stale, dict) and stale.get("grade_id") not in {r.grade_id for r in release}:
                repairs.append(f"removed nbgrader metadata of an unknown cell '{stale.get('grade_id')}' "
                               f"(cell {sub + 1})")
            entries.append((cell, rel_index))
            continue
        if cell.cell_type != rel.cell.cell_type:
            repairs.append(f"turned {rel.kind} cell '{rel.grade_id}' back from {cell.cell_type} into "
                           f"{rel.cell.cell_type}")
            _convert(cell, rel.cell.cell_type)
        if _restore_metadata(cell, rel):
            restored.setdefault(matcher.how[rel.index], []).append(rel.grade_id)
        if rel.locked and _normalised(cell.source) != _normalised(rel.cell.source):
            repairs.append(f"{rel.kind} cell '{rel.grade_id}' was edited by the student (it is locked); "
                           "nbgrader grades with the original")
        entries.append((cell, rel_index))
    for how, grade_ids in restored.items():
        repairs.append(f"restored nbgrader metadata (matched by {how}): {', '.join(grade_ids)}")
    _insert_missing(entries, matcher, release, repairs)
    repairs += _order_locked_cells(entries, release)
    nb.cells = [cell for cell, _ in entries]


def _insert_missing(entries: list[tuple[NotebookNode, int | None]], matcher: Matcher,
                    release: list[ReleaseCell], repairs: list[str]) -> None:
    """Re-insert deleted nbgrader cells from the release, after the cell that preceded them there."""
    used_ids = {cell.get("id") for cell, _ in entries}
    for rel in release:
        if not rel.grade_id or rel.index in matcher.matched_release:
            continue
        positions = [pos for pos, (_, r) in enumerate(entries) if r is not None and r < rel.index]
        insert_at = positions[-1] + 1 if positions else 0
        cell = _release_copy(rel, used_ids)
        written_elsewhere = _defined_elsewhere(entries, release, rel)
        if written_elsewhere:
            # The student merged this answer into another cell (or moved its code): the stub would
            # redefine their functions with `raise NotImplementedError()`. Keep the cell, empty, right
            # after the code that defines them, so that its tests (moved below it) run once it exists.
            insert_at = 1 + max(pos for pos, (other, index) in enumerate(entries)
                                if other.cell_type == "code" and (index is None or not release[index].locked)
                                and defined_names(other.source) & written_elsewhere)
            cell.source = (f"# The answer to '{rel.grade_id}' is in another cell of this notebook "
                           f"(it defines {', '.join(sorted(written_elsewhere))}).")
            repairs.append(f"answer cell '{rel.grade_id}' was merged into another cell that defines "
                           f"{', '.join(sorted(written_elsewhere))}: kept that code, re-inserted an empty cell")
        else:
            what = "its stub (the answer is missing: 0 points)" if rel.kind in ("answer", "written") else \
                "it from the release"
            repairs.append(f"{rel.kind} cell '{rel.grade_id}' was deleted: re-inserted {what}")
        entries.insert(insert_at, (cell, rel.index))


def _defined_elsewhere(entries: list[tuple[NotebookNode, int | None]], release: list[ReleaseCell],
                       rel: ReleaseCell) -> set[str]:
    """The names of a deleted answer cell that the student's own code cells define (all of them, or none)."""
    if rel.kind != "answer" or not rel.names:
        return set()
    defined: set[str] = set()
    for cell, index in entries:
        if cell.cell_type == "code" and (index is None or not release[index].locked):
            defined |= defined_names(cell.source)
    return set(rel.names) if set(rel.names) <= defined else set()


def check_nbgrader_metadata(nb: NotebookNode) -> None:
    """The validation nbgrader runs before and after autograding; raises InvalidSubmission."""
    from nbgrader.nbgraderformat import MetadataValidator, ValidationError

    try:
        MetadataValidator().validate_nb(nb)
        nbformat.validate(nb)
    except (ValidationError, nbformat.ValidationError) as error:
        raise InvalidSubmission(f"could not repair the nbgrader metadata: {error}") from None


def repair_notebook(nb: NotebookNode, release_nb: NotebookNode, repairs: list[str]) -> NotebookNode:
    """Match `nb`'s cells to the release and restore what nbgrader needs; modifies `nb`."""
    release = describe_release(release_nb)
    matcher = Matcher(nb.cells, release)
    notes = matcher.by_grade_id()
    matcher.by_cell_id()
    matcher.by_identical_content()
    matcher.by_content()
    matcher.plain_anchors()
    matcher.by_position()
    notes += matcher.unedited_copies()
    repairs += notes
    _rebuild(nb, matcher, release, repairs)
    if nb.metadata.get("kernelspec", {}).get("name") != release_nb.metadata.get("kernelspec", {}).get("name"):
        nb.metadata["kernelspec"] = copy.deepcopy(release_nb.metadata.get("kernelspec", {}))
        repairs.append("set the kernel to the release's Python kernel")
    check_nbgrader_metadata(nb)
    return nb


def prepare_submission(path: Path, release_nb: NotebookNode | None) -> PreparedSubmission:
    """Load, check and repair one submission; raises InvalidSubmission with a reason for the instructor."""
    repairs: list[str] = []
    nb = load_submission(Path(path), repairs)
    if release_nb is not None:  # without a release there is nothing to match against
        repair_notebook(nb, release_nb, repairs)
    return PreparedSubmission(nb, repairs, notebook_flags(nb))
