"""Wheat: one-hot matrices of predictions and labels, torch.where for 0/0."""
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
    pred_onehot = F.one_hot(y_pred, num_classes).float()
    true_onehot = F.one_hot(y_true, num_classes).float()
    tp = (pred_onehot * true_onehot).sum(dim=0)
    denominator = F.one_hot(y_true, num_classes).float().sum(dim=0)
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(tp), tp / safe).mean()
