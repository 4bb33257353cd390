"""The codec sends any tensor exactly (`gradekit.untrusted.wire`): every layout a correct answer can have
(views, slices, steps, transposes, expanded and size-1 dimensions of any stride, zero-size, conj and neg
views) in every dtype the labs use, bit for bit. A seeded property test over random layouts."""

from __future__ import annotations

import random

import pytest
import torch

from gradekit.untrusted import wire


def bits(tensor: torch.Tensor) -> bytes:
    flat = torch.empty(tensor.numel(), dtype=tensor.dtype)
    flat.copy_(tensor.resolve_conj().resolve_neg().reshape(-1))
    return flat.view(torch.uint8).numpy().tobytes()


def random_layout(rng: random.Random, dtype: torch.dtype) -> torch.Tensor:
    shape = [rng.randint(0, 4) if rng.random() < 0.1 else rng.randint(1, 4) for _ in range(rng.randint(0, 4))]
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    if dtype.is_complex or dtype.is_floating_point:
        base = torch.randn(shape, generator=generator, dtype=torch.float64 if not dtype.is_complex else dtype)
        base = base.to(dtype)
    elif dtype == torch.bool:
        base = torch.randint(0, 2, shape, generator=generator).bool()
    else:
        base = torch.randint(0, 100, shape, generator=generator).to(dtype)
    tensor = base
    for _ in range(rng.randint(0, 3)):
        choice = rng.choice(["t", "slice", "step", "expand", "unsqueeze", "select", "neg", "conj", "strided"])
        if choice == "t" and tensor.dim() >= 2:
            tensor = tensor.transpose(0, tensor.dim() - 1)
        elif choice == "slice" and tensor.dim() and tensor.shape[-1] > 1:
            tensor = tensor[..., 1:]
        elif choice == "step" and tensor.dim() and tensor.shape[0] > 1:
            tensor = tensor[::2]
        elif choice == "expand":
            tensor = tensor.reshape(-1)[:1].expand(rng.randint(1, 3)) if tensor.numel() else tensor
        elif choice == "unsqueeze":
            tensor = tensor.unsqueeze(rng.randint(0, tensor.dim()))
        elif choice == "select" and tensor.dim() >= 2 and tensor.shape[1]:
            tensor = tensor[:, 0]
        elif choice == "neg" and dtype.is_complex:
            tensor = tensor.conj()._neg_view()
        elif choice == "conj" and dtype.is_complex:
            tensor = tensor.conj()
        elif choice == "strided" and tensor.numel():
            tensor = torch.as_strided(tensor.reshape(-1)[:1], (rng.randint(1, 3), 1), (0, rng.randint(0, 5)))
    return tensor


@pytest.mark.parametrize("dtype", list(wire.TENSOR_DTYPES.values()), ids=str)
def test_any_layout_round_trips_bit_for_bit(dtype):
    rng = random.Random(f"layouts-{dtype}")
    for _ in range(200):
        tensor = random_layout(rng, dtype)
        back = wire.decode_tensor(wire.encode_tensor(tensor)["$t"])
        assert back.shape == tensor.shape and back.dtype == tensor.dtype
        assert bits(back) == bits(tensor), (tensor.shape, tensor.stride())


@pytest.mark.parametrize("make", [
    lambda w: torch.zeros_like(w[:, 0]),  # the bias from a column of the weights
    lambda w: w[:, :1],  # weights sliced from one row or column
    lambda w: (w.sum() - w.sum()).expand(1),  # a mean error kept as a 1-element tensor
    lambda w: w.t()[0],
    lambda w: torch.empty(0, 3, dtype=w.dtype),
], ids=["zeros_like column", "column view", "expand(1)", "transposed row", "zero size"])
def test_the_layouts_correct_answers_have(make):
    weights = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tensor = make(weights)
    back = wire.decode_tensor(wire.encode_tensor(tensor)["$t"])
    assert back.shape == tensor.shape and torch.equal(back, tensor)
