"""Chaff: gradient of the summed loss (no 1/N)."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred - y_true
    return x.T @ error, error.sum(dim=0, keepdim=True)
