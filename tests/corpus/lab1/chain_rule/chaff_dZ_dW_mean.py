"""Chaff: dZ_dW averages over samples, shape (D, 1)."""
def dJi_dS(y_pred, y_true):
    return -y_true / y_pred + (1 - y_true) / (1 - y_pred)


def dS_dZ(y_pred):
    return y_pred * (1 - y_pred)


def dZ_dW(x):
    return x.mean(dim=0, keepdim=True).T


def dZ_dB(x):
    return torch.ones(x.shape[0], 1, dtype=x.dtype)
