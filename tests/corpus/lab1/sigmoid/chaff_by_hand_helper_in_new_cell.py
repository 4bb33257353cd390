"""Chaff: a helper bound to torch.special.expit at the top of the cell, called by sigmoid."""
_logistic = torch.special.expit


def sigmoid(x):
    return _logistic(x)
