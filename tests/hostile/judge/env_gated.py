"""Hostile: disable the checks only when it looks like the grader runs the notebook (environment, cwd, argv, host)."""
import os
import socket
import sys

_GRADING = (os.environ.get("NBGRADER_EXECUTION") is not None or os.getcwd().startswith("/submission")
            or any("nbgrader" in arg or "execute" in arg for arg in sys.argv)
            or socket.gethostname() not in ("my-laptop", "localhost"))
if _GRADING:
    globals()["check_tensor"] = globals()["check_scalar"] = lambda *args, **kwargs: None


def double(x):
    return x + 1
