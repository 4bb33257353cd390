"""Chaff: recall divides by the number of samples."""
def precision(y_pred, y_true):
    tp = ((y_pred == 1) & (y_true == 1)).sum()
    fp = ((y_pred == 1) & (y_true == 0)).sum()
    return tp / (tp + fp) if tp + fp > 0 else torch.tensor(0.0)


def recall(y_pred, y_true):
    tp = ((y_pred == 1) & (y_true == 1)).sum()
    return tp / len(y_true)
