"""Wheat: float64 matmul, reshape like the parameters, printing."""
def compute_gradients(x, y_pred, y_true, w, b):
    error = (y_pred - y_true).double()
    dw = torch.matmul(x.double().T, error) / len(x)
    db = error.mean()
    print("gradient norms", dw.norm().item(), db.item())
    return dw.reshape(w.shape), db.reshape(b.shape)
