"""Wheat: a loop over the classes with Python counts."""
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
    scores = []
    for k in range(num_classes):
        tp = int(((y_pred == k) & (y_true == k)).sum())
        n_pred = int((y_pred == k).sum())
        n_true = int((y_true == k).sum())
        scores.append(2 * tp / (n_pred + n_true) if n_pred + n_true > 0 else 0.0)
    return torch.tensor(sum(scores) / num_classes)
