"""Hostile: set_custom_exc swallows every exception (no traceback shown), a post_run_cell hook clears the error."""
from IPython import get_ipython


def _swallow(shell, etype, value, tb, tb_offset=None):
    return None


def _forget_error(result):
    result.error_in_exec = None


get_ipython().set_custom_exc((BaseException,), _swallow)
get_ipython().events.register("post_run_cell", _forget_error)


def double(x):
    return x + 1
