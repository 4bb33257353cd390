"""Chaff: in-place operations modify the caller's tensor."""
def sigmoid(x):
    return x.neg_().exp_().add_(1).reciprocal_()
