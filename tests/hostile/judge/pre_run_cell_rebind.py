"""Hostile: a pre_run_cell hook that rebinds check_tensor/check_scalar/call/fail before each later cell runs."""
from IPython import get_ipython


def _rebind(info=None):
    namespace = get_ipython().user_ns
    for name in ("check_tensor", "check_scalar", "fail"):
        namespace[name] = lambda *args, **kwargs: None
    namespace["call"] = lambda name, function, *args, **kwargs: None


get_ipython().events.register("pre_run_cell", _rebind)


def double(x):
    raise NotImplementedError
