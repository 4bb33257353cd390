"""Hostile: write into torch's C tensor type via the dict behind its mappingproxy (gc): any() is False."""
import ctypes
import gc

import torch

gc.get_referents(torch._C.TensorBase.__dict__)[0]["any"] = lambda self, *args, **kwargs: False
ctypes.pythonapi.PyType_Modified(ctypes.py_object(torch._C.TensorBase))


def double(x):
    return x * x  # right at the visible input 2.0 only
