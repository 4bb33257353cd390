"""Hostile: delete the check helpers from the notebook's globals and put no-ops in builtins, where lookup falls back."""
import builtins

for _name in ("check_tensor", "check_scalar"):
    setattr(builtins, _name, lambda *args, **kwargs: None)
    del globals()[_name]


def double(x):
    return x + 1
