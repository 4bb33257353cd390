"""Chaff: hard-coded step 1e-3, ignores learning_rate."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    y_pred = logistic_regression(x, w, b)
    dw, db = compute_gradients(x, y_pred, y, w, b)
    return binary_cross_entropy(y_pred, y), w - 1e-3 * dw, b - 1e-3 * db
