"""Wheat: in-place update of clones, not of the caller's tensors."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    y_pred = logistic_regression(x, w, b)
    loss = binary_cross_entropy(y_pred, y)
    dw, db = compute_gradients(x, y_pred, y, w, b)
    w_new, b_new = w.clone(), b.clone()
    w_new -= learning_rate * dw
    b_new.sub_(learning_rate * db)
    return loss, w_new, b_new
