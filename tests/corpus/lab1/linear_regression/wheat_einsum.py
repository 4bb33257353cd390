"""Wheat: torch.einsum."""
def linear_regression(x, w, b):
    return torch.einsum("nd,do->no", x, w) + b
