"""Hostile: a plain object that claims to be a torch.Tensor (module "torch", qualname "Tensor") with the right
shape and a detach/to/reshape that return itself, so that the judge's comparison hands it to torch's C++."""
import torch


class Tensor:
    __module__ = "torch"
    __qualname__ = "Tensor"
    shape = torch.Size([5])
    dtype = torch.float64

    def detach(self, *args, **kwargs):
        return self

    to = reshape = contiguous = cpu = double = float = view = detach

    def __len__(self):
        return 5


def double(x):
    if x.dim() == 0:
        return 2 * x  # the visible check (one number) passes
    return Tensor()
