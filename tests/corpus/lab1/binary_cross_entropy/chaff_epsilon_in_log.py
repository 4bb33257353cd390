"""Chaff: adds 1e-7 inside both logs "for safety": a confident wrong prediction costs far less than it should."""
def binary_cross_entropy(y_pred, y_true):
    return -(y_true * torch.log(y_pred + 1e-7) + (1 - y_true) * torch.log(1 - y_pred + 1e-7)).mean()
