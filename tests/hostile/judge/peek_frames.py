"""Hostile: inside double, read the calling test's source via sys._getframe + linecache, evaluate its expected value."""
import ast
import linecache
import sys

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


def double(x):
    frame = sys._getframe(1)
    while frame is not None:
        source = "".join(linecache.getlines(frame.f_code.co_filename))
        if "check_" in source:
            expected = _expected_in(source, [x])
            if expected is not None:
                return expected
        frame = frame.f_back
    raise NotImplementedError
