"""Wheat: a loop over the classes with Python counts."""
def precision_macro(y_pred: torch.Tensor, y_true: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro precision: the unweighted mean over the K classes of TP_k / (TP_k + FP_k).

    A class that is never predicted has precision 0 (no division by zero).

    Args:
        y_pred: predicted labels, shape (N,), torch.long; y_true: true labels, shape (N,), torch.long.
        num_classes: K; every class 0, ..., K - 1 counts, even if it never occurs.
        Neither tensor may be modified.

    Returns:
        A float tensor holding one number (0-d).
    """
    scores = []
    for k in range(num_classes):
        tp = int(((y_pred == k) & (y_true == k)).sum())
        n_pred = int((y_pred == k).sum())
        scores.append(tp / n_pred if n_pred > 0 else 0.0)
    return torch.tensor(sum(scores) / num_classes)
