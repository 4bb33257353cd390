"""Chaff: dJi_dS of the mean loss (divides by N)."""
def dJi_dS(y_pred, y_true):
    return (-y_true / y_pred + (1 - y_true) / (1 - y_pred)) / y_pred.shape[0]


def dS_dZ(y_pred):
    return y_pred * (1 - y_pred)


def dZ_dW(x):
    return x.clone()


def dZ_dB(x):
    return torch.ones(x.shape[0], 1, dtype=x.dtype)
