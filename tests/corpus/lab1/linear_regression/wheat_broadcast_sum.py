"""Wheat: broadcasting and a sum with keepdim."""
def linear_regression(x, w, b):
    return (x * w.T).sum(dim=1, keepdim=True) + b
