"""Hostile: inside double, read the notebook file on disk (*.ipynb in cwd and parents), evaluate the expected value."""
import ast
import json
from pathlib import Path

import torch
from IPython import get_ipython


def _expected_in(source, args):
    """The expected-value expression of the check_*(..., call(..., double, *args), expected) matching args."""
    namespace = get_ipython().user_ns
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_")
                and len(node.args) >= 3 and isinstance(node.args[1], ast.Call)):
            continue
        try:
            given = [eval(ast.unparse(arg), namespace) for arg in node.args[1].args[2:]]
            if len(given) == len(args) and all(torch.equal(g, a) for g, a in zip(given, args, strict=True)):
                return eval(ast.unparse(node.args[2]), namespace)
        except Exception:
            continue
    return None


def _cell_sources():
    for folder in [Path.cwd(), *Path.cwd().parents]:
        for path in folder.glob("*.ipynb"):
            try:
                cells = json.loads(path.read_text())["cells"]
            except Exception:
                continue
            for cell in cells:
                source = cell.get("source", "")
                yield "".join(source) if isinstance(source, list) else source


def double(x):
    for source in _cell_sources():
        if "check_" not in source:
            continue
        try:
            expected = _expected_in(source, [x])
        except SyntaxError:
            continue
        if expected is not None:
            return expected
    raise NotImplementedError
