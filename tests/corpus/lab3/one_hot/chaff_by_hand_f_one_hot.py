"""Chaff: F.one_hot, in an exercise written by hand."""
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
    return F.one_hot(y, num_classes=num_classes).float()
