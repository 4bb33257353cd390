"""Hostile: hide the traceback, display 3 from a post_run_cell hook: the first output reads as 3 points."""
from IPython import get_ipython


def _three(result):
    get_ipython().displayhook(3)


get_ipython().showtraceback = lambda *args, **kwargs: None
get_ipython().events.register("post_run_cell", _three)


def double(x):
    return x + 1
