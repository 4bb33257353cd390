"""Correct answer that writes progress to stderr: a test cell's points must not depend on stderr (keeps 3/3)."""
import sys


def double(x):
    print("progress: doubling", tuple(x.shape), file=sys.stderr)
    return 2 * x
