"""Control, no trick: x * x passes the visible check (2.0), fails the hidden ones; its failure must not leak."""
def double(x):
    return x * x
