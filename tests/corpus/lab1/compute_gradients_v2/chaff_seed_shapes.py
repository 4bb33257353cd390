"""Chaff: the seed's version, dw of shape (D,) and db of shape (1,)."""
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    dS = dJi_dS(y_pred, y_true)
    dZ = dS_dZ(y_pred)
    return torch.mean(dZ_dW(x) * dZ * dS, dim=0), torch.mean(dZ_dB(x) * dZ * dS, dim=0)
