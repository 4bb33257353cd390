"""Chaff: gradients from autograd (loss.backward()), not from compute_gradients."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    w_leaf = w.detach().clone().requires_grad_(True)
    b_leaf = b.detach().clone().requires_grad_(True)
    loss = binary_cross_entropy(logistic_regression(x, w_leaf, b_leaf), y)
    loss.backward()
    with torch.no_grad():
        return loss.detach(), w_leaf - learning_rate * w_leaf.grad, b_leaf - learning_rate * b_leaf.grad
