"""Wheat: (p - y) / (p (1 - p)), p - p**2, x itself, ones_like."""
def dJi_dS(y_pred, y_true):
    return (y_pred - y_true) / (y_pred * (1 - y_pred))


def dS_dZ(y_pred):
    return y_pred - y_pred ** 2


def dZ_dW(x):
    return x


def dZ_dB(x):
    return torch.ones_like(x[:, :1])
