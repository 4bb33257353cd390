"""Chaff: forgets to update the bias."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    y_pred = logistic_regression(x, w, b)
    dw, db = compute_gradients(x, y_pred, y, w, b)
    return binary_cross_entropy(y_pred, y), w - learning_rate * dw, b
