"""Wheat: float32 ones for any input, printing shapes."""
def dJi_dS(y_pred, y_true):
    print("dJi_dS for", tuple(y_pred.shape))
    return torch.where(y_true == 1, -1 / y_pred, 1 / (1 - y_pred))


def dS_dZ(y_pred):
    return y_pred.mul(1 - y_pred)


def dZ_dW(x):
    print("dZ_dW for", tuple(x.shape))
    return x.detach().clone()


def dZ_dB(x):
    return torch.ones((len(x), 1))
