"""Chaff: tanh formula without the x / 2."""
def sigmoid(x):
    return 0.5 * (1 + torch.tanh(x))
