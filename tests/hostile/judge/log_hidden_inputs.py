"""Hostile: a correct function that logs every argument it gets, and prints the log whenever it is called
again (the next visible check) and at the end of the notebook: the hidden tests' inputs on the feedback page."""
import atexit

LOG = []


def double(x):
    LOG.append(x.tolist())
    print("LOGGED", LOG)
    return 2 * x


atexit.register(lambda: print("LOGGED", LOG))
