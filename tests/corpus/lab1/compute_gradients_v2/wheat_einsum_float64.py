"""Wheat: einsum in float64."""
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    factor = (dJi_dS(y_pred, y_true) * dS_dZ(y_pred)).double()
    dw = torch.einsum("no,nd->do", factor, dZ_dW(x).double()) / x.shape[0]
    db = torch.einsum("no,nk->ok", factor, dZ_dB(x).double()) / x.shape[0]
    return dw, db
