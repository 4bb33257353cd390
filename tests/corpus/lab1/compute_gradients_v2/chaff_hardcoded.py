"""Chaff: hard-codes the values of the one-feature example the visible check used to show."""
# Caught visibly: the gradient check runs on random parameters with three features.
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    return torch.tensor([[-0.75]]), torch.tensor([[-0.5]])
