"""Wheat: -y/p + (1 - y)/(1 - p) in float64 cast back, s * (1 - s), x times one, a column of ones of x's dtype."""
def dJi_dS(y_pred, y_true):
    p, y = y_pred.double(), y_true.double()
    return (-y / p + (1 - y) / (1 - p)).to(y_pred.dtype)


def dS_dZ(y_pred):
    return y_pred * (1 - y_pred)


def dZ_dW(x):
    return x * 1


def dZ_dB(x):
    return torch.ones(x.shape[0], 1, dtype=x.dtype)
