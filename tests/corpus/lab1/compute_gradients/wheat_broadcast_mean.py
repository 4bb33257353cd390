"""Wheat: broadcasting and mean with keepdim, then transpose."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred - y_true
    dw = (error * x).mean(dim=0, keepdim=True).T
    db = error.mean().reshape(1, 1)
    return dw, db
