"""Chaff: hard-codes the visible test's expected value."""
# Visibly silent by construction: it returns the visible example's own answer; hidden inputs catch it.
def linear_regression(x, w, b):
    return torch.tensor([[0.5], [2.5], [4.5]])
