"""Chaff: dw of shape (D,) instead of (D, 1)."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred - y_true
    return (error * x).mean(dim=0), error.mean(dim=0, keepdim=True)
