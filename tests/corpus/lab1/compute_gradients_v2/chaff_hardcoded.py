"""Chaff: hard-codes the visible test's expected values."""
# Visibly silent by construction: it returns the visible example's own answer; hidden inputs catch it.
def compute_gradients_v2(x, z, y_pred, y_true, w, b):
    return torch.tensor([[-0.75]]), torch.tensor([[-0.5]])
