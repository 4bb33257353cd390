"""Tampering detection: student code that patches the libraries or the check helpers the tests rely on.

Every test cell compares a student's function with torch/numpy/scikit-learn through the helpers of
`checks_cell.py`. A student who rebinds `torch.allclose`, `builtins.abs` or `check_tensor`, or
who runs strings through exec/eval, can make those comparisons lie. We do not block anything (the
grade stands); we flag it, one readable line per finding, for the instructor to look at.
"""

from __future__ import annotations

import ast
import re

from nbformat.notebooknode import NotebookNode

from gradekit.course.cells import grade_id_of, is_locked_cell

# Modules whose attributes the tests trust, by their canonical import path.
PROTECTED_MODULES = ("torch", "numpy", "builtins", "sklearn", "math", "scipy", "sys")
# Names defined by the read-only checks cell (gradekit/authoring/checks_cell.py).
CHECK_HELPERS = frozenset({"CheckFailed", "fail", "make_generator", "call", "check_tensor", "check_scalar",
                           "_clone", "_shape"})
# Conventional aliases, in case the student patches a name imported in a read-only cell.
DEFAULT_ALIASES = {"torch": "torch", "np": "numpy", "numpy": "numpy", "F": "torch.nn.functional",
                   "nn": "torch.nn", "builtins": "builtins", "sklearn": "sklearn", "math": "math",
                   "__builtins__": "builtins", "sys": "sys"}
# Local names that stand for a whole module: rebinding them (torch = Fake()) is tampering too.
MODULE_NAMES = frozenset({"torch", "np", "numpy", "F", "nn", "builtins", "sklearn", "__builtins__"})
# Settings students legitimately assign (reproducibility switches).
ALLOWED_TARGET_PREFIXES = ("torch.backends.",)
DYNAMIC_CODE_CALLS = frozenset({"exec", "eval", "compile", "__import__"})
ATTRIBUTE_SETTERS = frozenset({"setattr", "delattr"})
IPYTHON_LINE = re.compile(r"^\s*[%!?]")


def parse_cell(source: str) -> ast.Module | None:
    """Parse a code cell, ignoring IPython magics and shell lines; None when it is not valid Python."""
    lines = ["" if IPYTHON_LINE.match(line) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


def collect_aliases(trees: list[ast.Module]) -> dict[str, str]:
    """Local name -> module path, from every import in the notebook (`import torch.nn.functional as F`)."""
    aliases = dict(DEFAULT_ALIASES)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        aliases[alias.asname] = alias.name
                    else:
                        aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _root_name(node: ast.AST) -> str | None:
    """`torch.nn.functional.relu` -> "torch"; `vars(torch)["x"]` -> "torch"; None for anything else."""
    while True:
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars" \
                and node.args:
            node = node.args[0]
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # unparse of odd nodes is cosmetic only
        return type(node).__name__


class _TamperFinder(ast.NodeVisitor):
    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases
        self.findings: list[tuple[int, str]] = []

    def _protected(self, name: str | None) -> str | None:
        """The protected module a local name refers to, or None."""
        if name is None:
            return None
        module = self.aliases.get(name)
        if module and module.split(".")[0] in PROTECTED_MODULES:
            return module
        return None

    def _check_target(self, target: ast.AST, verb: str) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._check_target(element, verb)
            return
        if isinstance(target, ast.Starred):
            self._check_target(target.value, verb)
            return
        if isinstance(target, ast.Name):
            if target.id in CHECK_HELPERS:
                self.findings.append((target.lineno, f"{verb} the check helper `{target.id}`"))
            elif target.id in MODULE_NAMES:
                self.findings.append((target.lineno, f"{verb} the module name `{target.id}`"))
            return
        if _dotted(target).startswith(ALLOWED_TARGET_PREFIXES):
            return
        root = _root_name(target)
        if root in CHECK_HELPERS:
            self.findings.append((target.lineno, f"{verb} `{_dotted(target)}` (a check helper)"))
        elif self._protected(root) or (root == "globals" or root == "locals"):
            self.findings.append((target.lineno, f"{verb} `{_dotted(target)}`"))

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, "rebinds")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_target(node.target, "rebinds")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._check_target(node.target, "rebinds")
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target, "deletes")
        self.generic_visit(node)

    def _check_definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node.name in CHECK_HELPERS:
            self.findings.append((node.lineno, f"redefines the check helper `{node.name}`"))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._check_definition(node)
        self.generic_visit(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._check_definition(node)
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_definition(node)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname in CHECK_HELPERS:
                self.findings.append((node.lineno, f"rebinds the check helper `{alias.asname}` by an import"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if (alias.asname or alias.name) in CHECK_HELPERS:
                self.findings.append((node.lineno, f"rebinds the check helper `{alias.asname or alias.name}` "
                                                   "by an import"))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name in DYNAMIC_CODE_CALLS and isinstance(func, ast.Name):
            self.findings.append((node.lineno, f"runs code from a string with `{name}(...)`"))
        elif name in ATTRIBUTE_SETTERS and node.args:
            root = _root_name(node.args[0])
            if self._protected(root) or root in CHECK_HELPERS:
                self.findings.append((node.lineno, f"calls `{name}` on `{_dotted(node.args[0])}`"))
        elif name in ("update", "__setitem__", "__setattr__") and isinstance(func, ast.Attribute):
            root = _root_name(func.value)
            if self._protected(root) or root in ("globals",):
                self.findings.append((node.lineno, f"modifies `{_dotted(func.value)}` with `.{name}(...)`"))
        self.generic_visit(node)


def find_tampering(cells: list[tuple[str, str]], import_sources: list[str] = ()) -> list[str]:
    """Findings in student-editable code cells, given as (label, source) pairs.

    `import_sources` are the other code cells (read-only imports), used only to learn aliases.
    """
    parsed = [(label, parse_cell(source)) for label, source in cells]
    trees = [tree for _, tree in parsed if tree is not None]
    trees += [tree for tree in map(parse_cell, import_sources) if tree is not None]
    aliases = collect_aliases(trees)
    flags = []
    for label, tree in parsed:
        if tree is None:
            continue
        finder = _TamperFinder(aliases)
        finder.visit(tree)
        flags += [f"{label}, line {line}: {what}" for line, what in sorted(finder.findings)]
    return flags


def _is_locked(cell: NotebookNode) -> bool:
    return is_locked_cell(cell)


def _label(cell: NotebookNode, index: int) -> str:
    grade_id = grade_id_of(cell)
    return f"cell {index + 1} ({grade_id})" if grade_id else f"cell {index + 1}"


def notebook_flags(nb: NotebookNode) -> list[str]:
    """Tampering findings in a (repaired) notebook: only cells the student may edit are scanned,
    since the autograder restores locked cells from the instructor's source."""
    code_cells = [(index, cell) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    editable = [(_label(cell, index), cell.source) for index, cell in code_cells if not _is_locked(cell)]
    locked = [cell.source for _, cell in code_cells if _is_locked(cell)]
    return find_tampering(editable, locked)
