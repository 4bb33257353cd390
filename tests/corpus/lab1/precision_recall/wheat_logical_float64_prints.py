"""Wheat: logical_and counting in float64, printing counts."""
def precision(y_pred, y_true):
    tp = torch.logical_and(y_pred.bool(), y_true.bool()).sum().double()
    predicted = y_pred.bool().sum().double()
    print("tp", int(tp), "predicted positive", int(predicted))
    return torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros((), dtype=torch.float64))


def recall(y_pred, y_true):
    tp = torch.logical_and(y_pred.bool(), y_true.bool()).sum().double()
    positives = y_true.bool().sum().double()
    print("tp", int(tp), "positives", int(positives))
    return torch.where(positives > 0, tp / positives.clamp(min=1), torch.zeros((), dtype=torch.float64))
