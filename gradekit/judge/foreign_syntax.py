"""Student code written for a newer Python than the judge's: read with the kernel runtime's own parser.

The judge runs in the grader's Python (3.11); the students' notebooks run in the kernel runtime's (Colab's 3.13).
A cell with 3.12+ syntax (an f-string reusing its quotes, `type X = ...`, `def f[T](...)`) runs for the student and
for the kernel, but `ast.parse` here refuses it, and the "by hand" checks would then find no definition to read.
So a cell this Python cannot parse is parsed by the runtime's interpreter (`ast.parse` only: the source is read,
never run), its tree sent back as data and rebuilt here with this Python's `ast` classes. A node type this Python
does not have becomes a node of the same name and fields, so `ast.walk` still reaches everything inside it.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections.abc import Sequence

PARSE_SECONDS = 30.0
MAX_TREES_BYTES = 64 * 2**20  # the dumped trees of every cell that needs them, together

# Runs in the runtime's interpreter, with `-I` (no site-packages, no environment, no current folder on the path).
_DUMP = r"""
import ast, json, sys

def dump(node):
    if isinstance(node, ast.AST):
        fields = {name: dump(getattr(node, name, None)) for name in node._fields}
        return {"_type": type(node).__name__, **fields}
    if isinstance(node, list):
        return [dump(item) for item in node]
    if node is None or isinstance(node, (str, int, float, bool)):
        return node
    return repr(node)  # bytes, complex, Ellipsis: only walked past, never read

trees = []
for source in json.load(sys.stdin):
    try:
        trees.append(dump(ast.parse(source)))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        trees.append(None)
json.dump(trees, sys.stdout)
"""


def _unknown_node(name: str, fields: tuple[str, ...]) -> type:
    return type(name, (ast.AST,), {"_fields": fields})


def rebuild(data: object) -> object:
    """An `ast` tree of this Python from `_DUMP`'s data."""
    if isinstance(data, list):
        return [rebuild(item) for item in data]
    if not isinstance(data, dict):
        return data
    name = str(data.get("_type", ""))
    fields = {key: value for key, value in data.items() if key != "_type"}
    known = getattr(ast, name, None)
    cls = known if isinstance(known, type) and issubclass(known, ast.AST) else _unknown_node(name, tuple(fields))
    node = cls.__new__(cls)
    for key, value in fields.items():
        setattr(node, key, rebuild(value))
    return node


def parse_with(python: str, sources: Sequence[str]) -> list[ast.AST | None]:
    """`sources` parsed by the interpreter `python` (the kernel runtime's): a tree of this Python's `ast` per
    source, None for one that is not Python there either, or for all when the parser could not run."""
    if not sources:
        return []
    try:
        done = subprocess.run([python, "-I", "-c", _DUMP], input=json.dumps(list(sources)), capture_output=True,
                              text=True, timeout=PARSE_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return [None] * len(sources)
    if done.returncode != 0 or len(done.stdout) > MAX_TREES_BYTES:
        return [None] * len(sources)
    try:
        trees = json.loads(done.stdout)
        rebuilt = [rebuild(tree) if tree is not None else None for tree in trees]
    except (ValueError, RecursionError, MemoryError):
        return [None] * len(sources)
    if len(rebuilt) != len(sources):
        return [None] * len(sources)
    return [tree if isinstance(tree, ast.AST) else None for tree in rebuilt]


def trees_this_python_cannot_parse(python: str | None, sources: Sequence[str]) -> dict[str, ast.AST | None]:
    """source -> its tree, for each source that `ast.parse` here refuses, parsed by `python` (if given)."""
    failing = []
    for source in dict.fromkeys(sources):
        try:
            ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            failing.append(source)
    if not failing or not python:
        return {}
    return dict(zip(failing, parse_with(python, failing), strict=True))
