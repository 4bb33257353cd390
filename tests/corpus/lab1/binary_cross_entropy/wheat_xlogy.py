"""Wheat: torch.xlogy for both terms."""
def binary_cross_entropy(y_pred, y_true):
    return -(torch.xlogy(y_true, y_pred) + torch.xlogy(1 - y_true, 1 - y_pred)).mean()
