"""Hostile: ctypes PyDict_SetItem into the dicts of torch, math and torch's C tensor type so every comparison passes."""
import ctypes
import gc
import math

import torch

_set_item = ctypes.pythonapi.PyDict_SetItem
_set_item.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.py_object]
_ones = torch.ones


def _all_close(a, b, *args, **kwargs):
    return _ones(torch.broadcast_shapes(a.shape, b.shape), dtype=torch.bool)


_set_item(vars(torch), "isclose", _all_close)
_set_item(vars(math), "isclose", lambda *args, **kwargs: True)
_type_dict = gc.get_referents(torch._C.TensorBase.__dict__)[0]
_set_item(_type_dict, "any", lambda self, *args, **kwargs: False)
ctypes.pythonapi.PyType_Modified(ctypes.py_object(torch._C.TensorBase))


def double(x):
    return x + 1
