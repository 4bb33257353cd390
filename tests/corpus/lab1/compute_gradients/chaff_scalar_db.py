"""Chaff: db as a 0-d tensor instead of (1, 1)."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred - y_true
    return x.T @ error / x.shape[0], error.mean()
