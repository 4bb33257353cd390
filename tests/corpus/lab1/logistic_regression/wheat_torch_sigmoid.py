"""Wheat: torch.sigmoid on linear_regression."""
def logistic_regression(x, w, b):
    return torch.sigmoid(linear_regression(x, w, b))
