"""Hostile: double returns a tensor subclass whose __torch_function__ makes isclose/allclose/equal always succeed."""
import torch


class _Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.isclose, torch.Tensor.isclose):
            shape = torch.broadcast_shapes(*(torch.Size(a.shape) for a in args[:2]))
            return torch.ones(shape, dtype=torch.bool)
        if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def double(x):
    return (x * x).as_subclass(_Agreeable)  # right at the visible input 2.0 only
