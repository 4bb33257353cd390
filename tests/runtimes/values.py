"""Every kind of value the labs send between the judge and the kernel, built the same way on any Python and torch.

Run by tests/test_runtime.py in the grader's Python (3.11, torch 2.13) and in the kernel runtime's (Colab's 3.13,
torch 2.11): each side encodes what it built, the other decodes it and compares it with its own. The numbers are
written out (no random generator, whose streams may differ between versions)."""

from __future__ import annotations

import math

import numpy as np
import torch


def _grid(rows: int, columns: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor([[math.sin(1.7 * r + 0.3 * c) * 10 ** (c - 2) for c in range(columns)] for r in range(rows)],
                        dtype=dtype)


def kernel_values() -> dict:
    """What a student's functions return to the judge: the labs' tensors in every layout and dtype."""
    features = _grid(5, 3, torch.float64)
    column = features[:, :1]  # (N, 1), a view with a stride of 3
    with_grad = _grid(3, 1, torch.float64).requires_grad_()
    (with_grad * 2).sum().backward()
    parameter = torch.nn.Parameter(_grid(1, 3, torch.float32))
    return {
        "float32": _grid(4, 2, torch.float32),
        "float64": features,
        "column view": column,
        "transposed": features.T,
        "expanded": torch.tensor([[1.5]], dtype=torch.float64).expand(4, 1),
        "row": features[1],
        "scalar": torch.tensor(0.6931471805599453, dtype=torch.float64),
        "float32 scalar": torch.tensor(1e-12, dtype=torch.float32),
        "labels": torch.tensor([0, 1, 1, 0, 2], dtype=torch.int64),
        "predictions": torch.tensor([True, False, True, True]),
        "uint8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "empty": torch.zeros(0, 3, dtype=torch.float64),
        "not finite": torch.tensor([math.nan, math.inf, -math.inf, -0.0], dtype=torch.float64),
        "requires grad": with_grad,
        "parameter": parameter,
        "numpy float64": np.array([[0.1, 0.2], [0.3, 0.4]]),
        "numpy int64": np.array([3, 1, 2], dtype=np.int64),
        "numpy bool": np.array([True, False]),
        "numpy scalar": np.float64(0.125),
        "python floats": [0.1, math.nan, math.inf],
        "nested": {"history": [1.0, 0.5], "shape": torch.Size([5, 3]), "dtype": torch.float64,
                   "pair": (torch.tensor([1.0]), 2)},
    }


def judge_values() -> dict:
    """What the judge sends to a student's function: seeded float64 inputs, labels, and small nn models."""
    model = torch.nn.Linear(3, 1, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(_grid(1, 3, torch.float64))
        model.bias.fill_(-0.25)
    network = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        for index, parameter in enumerate(network.parameters()):
            parameter.copy_(_grid(*parameter.shape, torch.float32) if parameter.dim() == 2
                            else torch.full(parameter.shape, 0.1 * index))
    return {
        "inputs": _grid(6, 3, torch.float64),
        "targets": torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]], dtype=torch.float64),
        "classes": torch.tensor([2, 0, 1], dtype=torch.int64),
        "probability": torch.tensor([[0.5], [1e-12], [1 - 1e-12]], dtype=torch.float64),
        "model": model,
        "network": network,
    }
