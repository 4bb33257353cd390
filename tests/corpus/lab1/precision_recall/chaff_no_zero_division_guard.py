"""Chaff: no guard, 0 / 0 gives nan."""
def precision(y_pred, y_true):
    tp = ((y_pred == 1) & (y_true == 1)).sum()
    fp = ((y_pred == 1) & (y_true == 0)).sum()
    return tp / (tp + fp)


def recall(y_pred, y_true):
    tp = ((y_pred == 1) & (y_true == 1)).sum()
    fn = ((y_pred == 0) & (y_true == 1)).sum()
    return tp / (tp + fn) if tp + fn > 0 else torch.tensor(0.0)
