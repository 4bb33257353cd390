"""Hostile: allocate 64 GB and touch it."""
hog = bytearray(64 * 2**30)


def double(x):
    return 2 * x
