"""Hostile: give check_tensor, check_scalar and fail the code object of a no-op (same function objects)."""
for _name in ("check_tensor", "check_scalar", "fail"):
    globals()[_name].__code__ = (lambda *args, **kwargs: None).__code__


def double(x):
    return x + 1
