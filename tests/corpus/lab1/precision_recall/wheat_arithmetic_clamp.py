"""Wheat: arithmetic counting, denominator clamped to 1."""
def precision(y_pred, y_true):
    p, t = y_pred.float(), y_true.float()
    tp = (p * t).sum()
    fp = (p * (1 - t)).sum()
    return tp / torch.clamp(tp + fp, min=1)


def recall(y_pred, y_true):
    p, t = y_pred.float(), y_true.float()
    tp = (p * t).sum()
    fn = ((1 - p) * t).sum()
    return tp / torch.clamp(tp + fn, min=1)
