"""Hostile: sys.settrace rewrites `got` to `expected` in the frames of check_tensor/check_scalar."""
import ctypes
import sys


def _rewrite(frame, event, arg):
    if event == "line" and "expected" in frame.f_locals:
        frame.f_locals["got"] = frame.f_locals["expected"]
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
    return _rewrite


def _trace(frame, event, arg):
    if event == "call" and frame.f_code.co_name in ("check_tensor", "check_scalar"):
        return _rewrite
    return None


sys.settrace(_trace)


def double(x):
    return x + 1
