"""Wheat: sigmoid written with tanh."""
def sigmoid(x):
    return 0.5 * (1.0 + torch.tanh(x / 2.0))
