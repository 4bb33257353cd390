"""Chaff: clamps z to [-10, 10] 'for stability'."""
def sigmoid(x):
    z = x.clamp(-10, 10)
    return 1 / (1 + torch.exp(-z))
