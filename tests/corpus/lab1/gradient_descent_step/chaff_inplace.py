"""Chaff: updates the caller's w and b in place."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    y_pred = logistic_regression(x, w, b)
    loss = binary_cross_entropy(y_pred, y)
    dw, db = compute_gradients(x, y_pred, y, w, b)
    w -= learning_rate * dw
    b -= learning_rate * db
    return loss, w, b
