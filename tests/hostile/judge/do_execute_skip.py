"""Hostile: override the kernel's do_execute so that a cell calling a check is answered "ok" without running."""
from IPython import get_ipython

_kernel = get_ipython().kernel
_original = _kernel.do_execute


async def _do_execute(code, silent, store_history=True, user_expressions=None, allow_stdin=False, **kwargs):
    if "check_" in code:
        return {"status": "ok", "execution_count": _kernel.execution_count, "payload": [], "user_expressions": {}}
    return await _original(code, silent, store_history, user_expressions, allow_stdin, **kwargs)


_kernel.do_execute = _do_execute


def double(x):
    return x + 1
