"""Chaff: forgets the bias."""
def linear_regression(x, w, b):
    return x @ w
