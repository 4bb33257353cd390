"""Hostile: a pre_run_cell hook publishes 3 as an execute_result before the test runs (nbgrader: partial credit)."""
from IPython import get_ipython


def _three(info=None):
    get_ipython().displayhook(3)


get_ipython().events.register("pre_run_cell", _three)


def double(x):
    return x + 1
