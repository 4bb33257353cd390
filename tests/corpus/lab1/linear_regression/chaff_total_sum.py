"""Chaff: sums over samples and features together."""
def linear_regression(x, w, b):
    return (x * w.T).sum() + b
