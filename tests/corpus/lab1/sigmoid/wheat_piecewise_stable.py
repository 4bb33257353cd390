"""Wheat: numerically stable piecewise formula with torch.where."""
def sigmoid(x):
    exp_neg_abs = torch.exp(-torch.abs(x))
    return torch.where(x >= 0, 1.0 / (1.0 + exp_neg_abs), exp_neg_abs / (1.0 + exp_neg_abs))
