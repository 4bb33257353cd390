"""Hostile: patch torch.isclose/allclose/equal and math.isclose through importlib so that every comparison passes."""
import importlib

_torch = importlib.import_module("torch")
_ones = _torch.ones


def _all_close(a, b, *args, **kwargs):
    return _ones(_torch.broadcast_shapes(_torch.as_tensor(a).shape, _torch.as_tensor(b).shape), dtype=_torch.bool)


_torch.isclose = _all_close
_torch.allclose = _torch.equal = lambda *args, **kwargs: True
importlib.import_module("math").isclose = lambda *args, **kwargs: True


def double(x):
    return x + 1
