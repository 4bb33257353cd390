"""Chaff: y_true - y_pred, the sign is wrong."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_true - y_pred
    return x.T @ error / x.shape[0], error.mean(dim=0, keepdim=True)
