"""The value codec of the judge's channel: plain data only, as JSON, never pickle.

Both sides use it: the bridge in the student's kernel (`bridge.py`) and the trusted judge
(`gradekit.judge.judge`). What crosses the channel:

- None, bool, int, str; floats (nan and inf tagged, JSON has none);
- tensors as dtype, shape and raw bytes (with `requires_grad`, whether it is an
  `nn.Parameter`, and its `.grad`); numpy arrays and scalars likewise;
- lists, tuples, dicts of those; torch dtypes, sizes and devices; slices;
- handles: a number standing for an object that stays in the kernel (a model, a function),
  with the names of its classes so that the judge can answer `isinstance`;
- from the judge only: modules built from `torch.nn` building blocks, rebuilt in the kernel.

Decoding is bounded (depth, item count, bytes): the kernel side is under the student's control.
This file runs inside the sandbox too, so it imports nothing from gradekit.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import torch

MAX_DEPTH = 24
MAX_ITEMS = 200_000
MAX_DIMS = 8
MAX_TEXT = 100_000

TENSOR_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}
ARRAY_KINDS = "biufc"  # numpy: bool, int, uint, float, complex; never object


class WireError(ValueError):
    """A message that is not well-formed plain data (too deep, too large, wrong type)."""


class Handle:
    """A reference to an object that lives in the kernel (decoded form on the judge side)."""

    def __init__(self, number: int, classes: list[str], is_callable: bool, name: str) -> None:
        self.number, self.classes, self.is_callable, self.name = number, classes, is_callable, name


# ---------------------------------------------------------------- encoding


def _float(value: float) -> Any:
    return value if math.isfinite(value) else {"$f": repr(value)}


def encode_tensor(value: torch.Tensor, with_grad: bool = True) -> dict:
    tensor = value.detach()
    if tensor.layout != torch.strided or tensor.is_quantized or str(tensor.dtype).removeprefix(
            "torch.") not in TENSOR_DTYPES:
        raise WireError(f"unsupported tensor ({tensor.dtype}, {tensor.layout})")
    tensor = tensor.resolve_conj().resolve_neg().cpu()
    # Any layout (views, slices, expanded, size-1 dimensions of any stride): copied into fresh unit-stride
    # memory, since `contiguous()` keeps a size-1 dimension's stride (0 after `expand(1)`).
    flat = torch.empty(tensor.numel(), dtype=tensor.dtype)
    flat.copy_(tensor.reshape(-1))
    data = flat.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
    encoded = {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": list(tensor.shape),
               "data": base64.b64encode(data).decode(), "rg": bool(value.requires_grad),
               "param": isinstance(value, torch.nn.Parameter)}
    grad = getattr(value, "grad", None) if with_grad and value.is_leaf else None
    if isinstance(grad, torch.Tensor):
        encoded["grad"] = encode_tensor(grad, with_grad=False)["$t"]
    return {"$t": encoded}


def encode(value: Any, handle_of=None, depth: int = 0) -> Any:
    """Plain data for `value`; objects that are not plain data become handles via `handle_of(obj)`."""
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and type(value) in (int, bool):
        return value
    if type(value) is float:
        return _float(value)
    if isinstance(value, torch.Tensor):
        return encode_tensor(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in ARRAY_KINDS and value.ndim <= MAX_DIMS:
        array = np.ascontiguousarray(value)
        return {"$a": {"dtype": array.dtype.str, "shape": list(array.shape),
                       "data": base64.b64encode(array.tobytes()).decode()}}
    if isinstance(value, np.generic) and np.dtype(type(value)).kind in ARRAY_KINDS:
        return {"$n": {"dtype": value.dtype.str, "data": base64.b64encode(value.tobytes()).decode()}}
    if isinstance(value, torch.dtype):
        return {"$dt": str(value).removeprefix("torch.")}
    if isinstance(value, torch.Size):
        return {"$sz": [int(v) for v in value]}
    if isinstance(value, torch.device):
        return {"$dev": str(value)}
    if isinstance(value, slice):
        return {"$sl": [encode(value.start, handle_of, depth + 1), encode(value.stop, handle_of, depth + 1),
                        encode(value.step, handle_of, depth + 1)]}
    if type(value) is list:
        return [encode(v, handle_of, depth + 1) for v in value]
    if type(value) is tuple:
        return {"$tu": [encode(v, handle_of, depth + 1) for v in value]}
    if type(value) is dict:
        return {"$d": [[encode(k, handle_of, depth + 1), encode(v, handle_of, depth + 1)]
                       for k, v in value.items()]}
    if handle_of is None:
        raise WireError(f"cannot send a {type(value).__name__}")
    return handle_of(value)


def describe_classes(value: Any) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in type(value).__mro__][:32]


# ---------------------------------------------------------------- decoding


class _Budget:
    def __init__(self) -> None:
        self.items = 0

    def spend(self, count: int = 1) -> None:
        self.items += count
        if self.items > MAX_ITEMS:
            raise WireError(f"more than {MAX_ITEMS} values")


def _bytes(text: Any, expected: int) -> bytes:
    if not isinstance(text, str) or len(text) > 4 * (expected // 3 + 2):
        raise WireError("tensor data of the wrong size")
    data = base64.b64decode(text, validate=True)
    if len(data) != expected:
        raise WireError("tensor data of the wrong size")
    return data


def _shape(shape: Any) -> list[int]:
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
            type(n) is int and 0 <= n <= 2**31 for n in shape):
        raise WireError("bad shape")
    return shape


def decode_tensor(spec: Any, budget: _Budget | None = None) -> torch.Tensor:
    budget = budget or _Budget()
    if not isinstance(spec, dict) or spec.get("dtype") not in TENSOR_DTYPES:
        raise WireError("bad tensor")
    dtype, shape = TENSOR_DTYPES[spec["dtype"]], _shape(spec.get("shape"))
    numel = math.prod(shape)
    budget.spend(max(1, numel // 64))
    itemsize = torch.empty((), dtype=dtype).element_size()
    data = _bytes(spec.get("data"), numel * itemsize)
    flat = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    tensor = flat.view(dtype).reshape(shape).clone() if numel else torch.empty(shape, dtype=dtype)
    wants_grad = spec.get("rg") is True and (tensor.is_floating_point() or tensor.is_complex())
    if spec.get("param") is True:
        tensor = torch.nn.Parameter(tensor, requires_grad=wants_grad)
    elif wants_grad:
        tensor.requires_grad_(True)
    if isinstance(spec.get("grad"), dict):
        grad = decode_tensor(spec["grad"], budget)
        if tensor.requires_grad and grad.shape == tensor.shape and grad.dtype == tensor.dtype:
            tensor.grad = grad
    return tensor


def decode(data: Any, make_handle, budget: _Budget | None = None, depth: int = 0) -> Any:
    """Values from plain data; `make_handle(spec)` turns a handle spec into the caller's stand-in."""
    budget = budget or _Budget()
    budget.spend()
    if depth > MAX_DEPTH:
        raise WireError("nested too deeply")
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, str):
        if len(data) > MAX_TEXT:
            raise WireError("string too long")
        return data
    if isinstance(data, list):
        return [decode(v, make_handle, budget, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise WireError("bad value")
    (tag, spec), = data.items()
    if tag == "$f":
        if spec not in ("nan", "inf", "-inf"):
            raise WireError("bad float")
        return float(spec)
    if tag == "$t":
        return decode_tensor(spec, budget)
    if tag == "$a":
        if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str):
            raise WireError("bad array")
        dtype = np.dtype(spec["dtype"])
        if dtype.kind not in ARRAY_KINDS:
            raise WireError("bad array dtype")
        shape = _shape(spec.get("shape"))
        budget.spend(max(1, math.prod(shape) // 64))
        return np.frombuffer(_bytes(spec.get("data"), math.prod(shape) * dtype.itemsize),
                             dtype=dtype).reshape(shape).copy()
    if tag == "$n":
        dtype = np.dtype(spec["dtype"]) if isinstance(spec, dict) and isinstance(spec.get("dtype"), str) else None
        if dtype is None or dtype.kind not in ARRAY_KINDS:
            raise WireError("bad numpy scalar")
        return np.frombuffer(_bytes(spec.get("data"), dtype.itemsize), dtype=dtype)[0]
    if tag == "$dt":
        if spec not in TENSOR_DTYPES:
            raise WireError("bad dtype")
        return TENSOR_DTYPES[spec]
    if tag == "$sz":
        return torch.Size(_shape(spec))
    if tag == "$dev":
        if spec != "cpu":
            raise WireError("bad device")
        return torch.device("cpu")
    if tag == "$sl":
        if not isinstance(spec, list) or len(spec) != 3:
            raise WireError("bad slice")
        return slice(*(decode(v, make_handle, budget, depth + 1) for v in spec))
    if tag == "$tu":
        if not isinstance(spec, list):
            raise WireError("bad tuple")
        return tuple(decode(v, make_handle, budget, depth + 1) for v in spec)
    if tag == "$d":
        if not isinstance(spec, list) or not all(isinstance(p, list) and len(p) == 2 for p in spec):
            raise WireError("bad dict")
        result = {}
        for key, value in spec:
            key = decode(key, make_handle, budget, depth + 1)
            try:
                hash(key)
            except TypeError as error:
                raise WireError("unhashable dict key") from error
            result[key] = decode(value, make_handle, budget, depth + 1)
        return result
    if tag in ("$h", "$m"):
        return make_handle(tag, spec)
    raise WireError("unknown tag")


def handle_spec(spec: Any) -> Handle:
    """Validate a handle spec from the kernel."""
    if not isinstance(spec, dict) or type(spec.get("id")) is not int:
        raise WireError("bad handle")
    classes = spec.get("classes", [])
    if not isinstance(classes, list) or len(classes) > 32 or not all(
            isinstance(c, str) and len(c) < 300 for c in classes):
        raise WireError("bad handle classes")
    name = spec.get("name", "")
    return Handle(spec["id"], classes, spec.get("callable") is True, name[:200] if isinstance(name, str) else "")


# ---------------------------------------------------------------- torch.nn building blocks


def encode_module(module: torch.nn.Module, depth: int = 0) -> dict:
    """A module made of torch.nn classes only (the judge's own test models), as plain data."""
    cls = type(module)
    if not cls.__module__.startswith("torch.nn.") or depth > MAX_DEPTH:
        raise WireError(f"only torch.nn building blocks can be sent to the student's code, not {cls.__name__}")
    attributes = {k: encode(v) for k, v in vars(module).items()
                  if not k.startswith("_") and k != "training"
                  and (v is None or isinstance(v, (bool, int, float, str, tuple)))}
    return {"$m": {
        "class": f"{cls.__module__}.{cls.__qualname__}", "training": module.training, "attributes": attributes,
        "parameters": {k: (None if v is None else encode_tensor(v)) for k, v in module._parameters.items()},
        "buffers": {k: (None if v is None else encode_tensor(v)) for k, v in module._buffers.items()},
        "children": {k: (None if v is None else encode_module(v, depth + 1)) for k, v in module._modules.items()},
    }}
