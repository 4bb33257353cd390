"""Hostile: kill the process that runs the kernel."""
import os
import signal

os.kill(os.getppid(), signal.SIGKILL)


def double(x):
    return 2 * x
