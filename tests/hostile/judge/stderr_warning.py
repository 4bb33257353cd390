"""Correct answer that emits a warning with warnings forced on: stderr must not cost the points (keeps 3/3)."""
import warnings


def double(x):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("double: this runs on the CPU", RuntimeWarning, stacklevel=2)
    return 2 * x
