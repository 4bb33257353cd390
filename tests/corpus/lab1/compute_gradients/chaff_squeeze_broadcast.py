"""Chaff: (N,) predictions minus (N, 1) labels broadcast into (N, N)."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred.squeeze() - y_true
    dw = (x.T @ error).mean(dim=1, keepdim=True)
    db = error.mean().reshape(1, 1)
    return dw, db
