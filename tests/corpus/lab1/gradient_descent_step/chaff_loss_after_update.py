"""Chaff: returns the loss after the update."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    y_pred = logistic_regression(x, w, b)
    dw, db = compute_gradients(x, y_pred, y, w, b)
    w, b = w - learning_rate * dw, b - learning_rate * db
    return binary_cross_entropy(logistic_regression(x, w, b), y), w, b
