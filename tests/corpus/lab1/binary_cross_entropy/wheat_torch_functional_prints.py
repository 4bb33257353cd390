"""Wheat: F.binary_cross_entropy, printing the loss."""
def binary_cross_entropy(y_pred, y_true):
    loss = F.binary_cross_entropy(y_pred, y_true)
    print("loss", loss.item())
    return loss
