"""Wheat: exp(-log(1 + exp(-x))) via logaddexp."""
def sigmoid(x):
    return torch.exp(-torch.logaddexp(torch.zeros_like(x), -x))
