"""Hostile: rebind the check helpers through globals() so that every check passes."""
globals()["check_tensor"] = globals()["check_scalar"] = lambda *args, **kwargs: None


def double(x):
    return x + 1
