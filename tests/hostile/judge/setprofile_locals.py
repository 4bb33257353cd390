"""Hostile: sys.setprofile rewrites `got` to `expected` when check_tensor/check_scalar are called."""
import ctypes
import sys


def _profile(frame, event, arg):
    if event == "call" and frame.f_code.co_name in ("check_tensor", "check_scalar"):
        frame.f_locals["got"] = frame.f_locals["expected"]
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))


sys.setprofile(_profile)


def double(x):
    return x + 1
