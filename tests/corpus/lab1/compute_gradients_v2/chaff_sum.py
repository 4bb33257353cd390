"""Chaff: sums over samples instead of averaging."""
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    factor = dJi_dS(y_pred, y_true) * dS_dZ(y_pred)
    return dZ_dW(x).T @ factor, dZ_dB(x).T @ factor
