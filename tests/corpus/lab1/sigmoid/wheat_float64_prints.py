"""Wheat: computes in float64, prints, and casts back."""
def sigmoid(x):
    result = 1.0 / (1.0 + torch.exp(-x.double()))
    print("sigmoid of", tuple(x.shape))
    return result.to(x.dtype)
