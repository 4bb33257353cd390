"""Wheat: mean over samples reshaped like w and b, printing."""
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    dS = dJi_dS(y_pred, y_true)
    dZ = dS_dZ(y_pred)
    per_sample_dw = dS * dZ * dZ_dW(x)
    per_sample_db = dS * dZ * dZ_dB(x)
    print("per-sample gradients", tuple(per_sample_dw.shape), tuple(per_sample_db.shape))
    return per_sample_dw.mean(dim=0).reshape(w.shape), per_sample_db.mean(dim=0).reshape(b.shape)
