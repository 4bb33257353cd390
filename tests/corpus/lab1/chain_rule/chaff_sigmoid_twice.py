"""Chaff: applies the sigmoid again to the sigmoid output in dS_dZ."""
def dJi_dS(y_pred, y_true):
    return -y_true / y_pred + (1 - y_true) / (1 - y_pred)


def dS_dZ(y_pred):
    s = torch.sigmoid(y_pred)
    return s * (1 - s)


def dZ_dW(x):
    return x.clone()


def dZ_dB(x):
    return torch.ones(x.shape[0], 1, dtype=x.dtype)
