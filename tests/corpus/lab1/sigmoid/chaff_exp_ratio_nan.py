"""Chaff: exp(x) / (1 + exp(x)) gives nan for large x."""
def sigmoid(x):
    return torch.exp(x) / (1 + torch.exp(x))
