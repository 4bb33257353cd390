"""Wheat: torch.matmul."""
def linear_regression(x, w, b):
    return torch.matmul(x, w) + b
