"""Wheat: torch.einsum and a sum divided by N."""
def compute_gradients(x, y_pred, y_true, w, b):
    n = x.shape[0]
    error = y_pred - y_true
    dw = torch.einsum("nd,no->do", x, error) / n
    db = error.sum(dim=0, keepdim=True) / n
    return dw, db
