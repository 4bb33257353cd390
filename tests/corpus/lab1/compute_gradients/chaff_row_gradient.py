"""Chaff: dw as a row (1, D), the layout of x's rows, where the shape of w, (D, 1), is asked."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred - y_true
    dw = error.T @ x / x.shape[0]
    db = error.mean(dim=0, keepdim=True)
    return dw, db
