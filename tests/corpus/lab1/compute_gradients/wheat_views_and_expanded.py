"""Wheat: a transposed product and an expanded mean (strides 0): any layout is a correct tensor."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = y_pred - y_true
    dw = (error.T @ x).T / x.shape[0]
    db = error.mean().expand(1, 1)
    return dw, db
