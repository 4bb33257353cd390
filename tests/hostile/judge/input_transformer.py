"""Hostile: an IPython input transformer that replaces every later cell calling a check with `pass`."""
from IPython import get_ipython


def _blank_checks(lines):
    return ["pass\n"] if any("check_" in line for line in lines) else lines


get_ipython().input_transformers_cleanup.append(_blank_checks)


def double(x):
    return x + 1
