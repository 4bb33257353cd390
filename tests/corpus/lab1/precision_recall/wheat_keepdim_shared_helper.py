"""Wheat: a shared counting helper, (1, 1) results."""
def _counts(y_pred, y_true):
    predicted = y_pred.reshape(-1, 1) == 1
    actual = y_true.reshape(-1, 1) == 1
    tp = (predicted & actual).sum(dim=0, keepdim=True).float()
    fp = (predicted & ~actual).sum(dim=0, keepdim=True).float()
    fn = (~predicted & actual).sum(dim=0, keepdim=True).float()
    return tp, fp, fn


def precision(y_pred, y_true):
    tp, fp, _ = _counts(y_pred, y_true)
    return torch.nan_to_num(tp / (tp + fp), nan=0.0)


def recall(y_pred, y_true):
    tp, _, fn = _counts(y_pred, y_true)
    return torch.nan_to_num(tp / (tp + fn), nan=0.0)
