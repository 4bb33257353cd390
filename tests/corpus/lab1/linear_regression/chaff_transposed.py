"""Chaff: w.T @ x.T, shape (1, N) instead of (N, 1)."""
def linear_regression(x, w, b):
    return w.T @ x.T + b
