"""Wheat: exp(z - logsumexp(z)) row by row."""
def softmax(z: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax: logits z of shape (N, K) -> probabilities of shape (N, K).

    Row i is exp(z[i]) / sum_k exp(z[i, k]), so every row sums to 1. The result must stay
    finite for logits as large as +-1000: subtract each row's maximum before exponentiating.
    z must not be modified.
    """
    return torch.exp(z - torch.logsumexp(z, dim=1, keepdim=True))
