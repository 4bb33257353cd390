"""Chaff: hard-codes the visible test's expected values."""
# Visibly silent by construction: it returns the visible example's own answers; hidden inputs catch it.
def precision(y_pred, y_true):
    return torch.tensor(0.5) if y_pred.sum() > 0 else torch.tensor(0.0)


def recall(y_pred, y_true):
    return torch.tensor(1 / 3)
