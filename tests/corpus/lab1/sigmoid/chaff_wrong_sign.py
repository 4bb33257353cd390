"""Chaff: 1 / (1 + exp(x)), the sign of the exponent is wrong."""
def sigmoid(x):
    return 1 / (1 + torch.exp(x))
