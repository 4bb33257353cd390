"""Chaff: returns Python floats."""
def precision(y_pred, y_true):
    tp = ((y_pred == 1) & (y_true == 1)).sum().item()
    fp = ((y_pred == 1) & (y_true == 0)).sum().item()
    return tp / (tp + fp) if tp + fp > 0 else 0.0


def recall(y_pred, y_true):
    tp = ((y_pred == 1) & (y_true == 1)).sum().item()
    fn = ((y_pred == 0) & (y_true == 1)).sum().item()
    return tp / (tp + fn) if tp + fn > 0 else 0.0
