"""Hostile: an IPython AST transformer that turns every later cell calling a check into `pass`."""
import ast

from IPython import get_ipython


class _BlankChecks(ast.NodeTransformer):
    def visit_Module(self, node):
        if "check_" in ast.unparse(node):
            return ast.fix_missing_locations(ast.Module(body=[ast.Pass()], type_ignores=[]))
        return node


get_ipython().ast_transformers.append(_BlankChecks())


def double(x):
    return x + 1
