"""Wheat: confusion matrix by bincount, 0/0 turned into 0 by nan_to_num."""
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
    confusion = torch.bincount(y_true * num_classes + y_pred,
                               minlength=num_classes ** 2).reshape(num_classes, num_classes).double()
    per_class = torch.nan_to_num(confusion.diag() / confusion.sum(dim=0), nan=0.0)
    return per_class.mean()
