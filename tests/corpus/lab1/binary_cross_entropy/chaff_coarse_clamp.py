"""Chaff: clamps probabilities to [1e-4, 1 - 1e-4]."""
def binary_cross_entropy(y_pred, y_true):
    p = y_pred.clamp(1e-4, 1 - 1e-4)
    return -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p)).mean()
