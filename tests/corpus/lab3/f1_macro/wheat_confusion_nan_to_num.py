"""Wheat: confusion matrix by bincount, 0/0 turned into 0 by nan_to_num."""
def f1_macro(y_pred: torch.Tensor, y_true: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Macro F1: the unweighted mean over the K classes of F1_k = 2 P_k R_k / (P_k + R_k).

    P_k and R_k are the precision and recall of class k (0 when their denominator is 0);
    F1_k is 0 when P_k + R_k = 0. This is the mean of the per-class F1 scores, not the
    harmonic mean of macro precision and macro recall.

    Args:
        y_pred: predicted labels, shape (N,), torch.long; y_true: true labels, shape (N,), torch.long.
        num_classes: K; every class 0, ..., K - 1 counts, even if it never occurs.
        Neither tensor may be modified.

    Returns:
        A float tensor holding one number (0-d).
    """
    confusion = torch.bincount(y_true * num_classes + y_pred,
                               minlength=num_classes ** 2).reshape(num_classes, num_classes).double()
    per_class = torch.nan_to_num(2 * confusion.diag() / (confusion.sum(dim=0) + confusion.sum(dim=1)), nan=0.0)
    return per_class.mean()
