"""Chaff: the pieces computed with torch.autograd, not derived by hand."""
def dJi_dS(y_pred, y_true):
    p = y_pred.detach().clone().requires_grad_(True)
    per_sample = -(y_true * torch.log(p) + (1 - y_true) * torch.log(1 - p))
    (grad,) = torch.autograd.grad(per_sample.sum(), p)
    return grad


def dS_dZ(y_pred):
    z = torch.log(y_pred / (1 - y_pred)).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.sigmoid(z).sum(), z)
    return grad


def dZ_dW(x):
    return x * 1.0


def dZ_dB(x):
    return x[:, :1] * 0 + 1
