"""Chaff: (N,) predictions times (N, 1) labels broadcast into (N, N)."""
def precision(y_pred, y_true):
    tp = (y_pred.view(-1) * y_true).sum()
    fp = (y_pred.view(-1) * (1 - y_true)).sum()
    return tp / (tp + fp) if tp + fp > 0 else torch.tensor(0.0)


def recall(y_pred, y_true):
    tp = (y_pred.view(-1) * y_true).sum()
    fn = ((1 - y_pred.view(-1)) * y_true).sum()
    return tp / (tp + fn) if tp + fn > 0 else torch.tensor(0.0)
