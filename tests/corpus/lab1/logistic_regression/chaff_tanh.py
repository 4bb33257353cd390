"""Chaff: tanh instead of the sigmoid."""
def logistic_regression(x, w, b):
    return torch.tanh(linear_regression(x, w, b))
