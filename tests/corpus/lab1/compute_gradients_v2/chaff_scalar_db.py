"""Chaff: db as a 0-d tensor."""
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    factor = dJi_dS(y_pred, y_true) * dS_dZ(y_pred)
    return dZ_dW(x).T @ factor / x.shape[0], factor.mean()
