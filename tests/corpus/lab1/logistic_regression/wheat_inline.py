"""Wheat: inline formula without the helper functions."""
def logistic_regression(x, w, b):
    return 1 / (1 + torch.exp(-(x @ w + b)))
