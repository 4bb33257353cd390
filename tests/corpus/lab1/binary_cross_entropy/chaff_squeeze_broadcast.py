"""Chaff: (N,) labels broadcast with (N, 1) into (N, N)."""
def binary_cross_entropy(y_pred, y_true):
    y = y_true.squeeze()
    return -(y * torch.log(y_pred) + (1 - y) * torch.log(1 - y_pred)).mean()
