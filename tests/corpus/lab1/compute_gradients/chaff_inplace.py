"""Chaff: modifies the caller's y_pred in place."""
def compute_gradients(x, y_pred, y_true, w, b):
    y_pred -= y_true
    return x.T @ y_pred / x.shape[0], y_pred.mean(dim=0, keepdim=True)
