"""Wheat: per-class precision and recall, then F1_k = 2PR/(P+R)."""
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
    f1_scores = torch.zeros(num_classes)
    for k in range(num_classes):
        tp = ((y_pred == k) & (y_true == k)).sum().float()
        precision = tp / (y_pred == k).sum() if (y_pred == k).any() else torch.tensor(0.0)
        recall = tp / (y_true == k).sum() if (y_true == k).any() else torch.tensor(0.0)
        if precision + recall > 0:
            f1_scores[k] = 2 * precision * recall / (precision + recall)
    return f1_scores.mean()
