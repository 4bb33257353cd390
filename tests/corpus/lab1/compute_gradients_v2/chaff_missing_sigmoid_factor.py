"""Chaff: forgets the dS_dZ factor."""
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    factor = dJi_dS(y_pred, y_true)
    n = x.shape[0]
    return dZ_dW(x).T @ factor / n, dZ_dB(x).T @ factor / n
