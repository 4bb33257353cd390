"""Chaff: divides by the true class counts (that is recall)."""
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
    classes = torch.arange(num_classes)
    tp = ((y_pred[:, None] == classes) & (y_true[:, None] == classes)).sum(dim=0).double()
    n_pred = (y_pred[:, None] == classes).sum(dim=0).double()
    n_true = (y_true[:, None] == classes).sum(dim=0).double()
    return torch.where(n_true > 0, tp / n_true, torch.zeros_like(tp)).mean()
