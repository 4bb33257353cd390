"""Chaff: F.binary_cross_entropy in an exercise written by hand."""
def binary_cross_entropy(y_pred, y_true):
    loss = F.binary_cross_entropy(y_pred, y_true)
    print("loss", loss.item())
    return loss
