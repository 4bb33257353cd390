"""Chaff: missing minus sign."""
def binary_cross_entropy(y_pred, y_true):
    return (y_true * torch.log(y_pred) + (1 - y_true) * torch.log(1 - y_pred)).mean()
