"""Wheat: scatter_ ones into a zero matrix."""
def one_hot(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot encode class labels.

    Args:
        y: class labels, shape (N,), dtype torch.long, values in 0, ..., num_classes - 1.
           A class may be absent from y. Must not be modified.
        num_classes: K, the number of classes.

    Returns:
        float32 tensor of shape (N, K) with 1.0 at [i, y[i]] and 0.0 everywhere else
        (float32 like the features, so that it mixes with them in matrix products).
    """
    return torch.zeros(y.shape[0], num_classes).scatter_(1, y.unsqueeze(1), 1.0)
