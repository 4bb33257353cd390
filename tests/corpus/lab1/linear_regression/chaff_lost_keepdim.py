"""Chaff: sum without keepdim, (N,) broadcast with b into (1, N)."""
def linear_regression(x, w, b):
    return (x * w.T).sum(dim=1) + b
