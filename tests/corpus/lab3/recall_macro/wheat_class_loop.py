"""Wheat: a loop over the classes with Python counts."""
def recall_macro(y_pred: torch.Tensor, y_true: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro recall: the unweighted mean over the K classes of TP_k / (TP_k + FN_k).

    A class that never occurs in y_true has recall 0 (no division by zero).

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
        n_true = int((y_true == k).sum())
        scores.append(tp / n_true if n_true > 0 else 0.0)
    return torch.tensor(sum(scores) / num_classes)
