"""Chaff: torch.autograd.grad of the mean loss, not the derived gradient."""
def compute_gradients(x, y_pred, y_true, w, b):
    w_leaf, b_leaf = w.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    p = 1 / (1 + torch.exp(-(x @ w_leaf + b_leaf)))
    loss = -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p)).mean()
    return torch.autograd.grad(loss, (w_leaf, b_leaf))
