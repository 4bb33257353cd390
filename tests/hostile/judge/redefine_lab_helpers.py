"""Hostile: redefine make_generator, torch.manual_seed, torch.randn so the checks only try 2.0, which x*x gets right."""
import torch

_full = torch.full


def make_generator(seed):
    return torch.Generator().manual_seed(0)


def _twos(*size, generator=None, dtype=None, **kwargs):
    if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)):
        size = tuple(size[0])
    return _full(size, 2.0, dtype=dtype)


torch.manual_seed = lambda seed: torch.Generator().manual_seed(0)
torch.randn = _twos


def double(x):
    return x * x  # right at 2.0 only
