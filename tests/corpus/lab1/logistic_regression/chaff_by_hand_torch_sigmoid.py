"""Chaff: torch.sigmoid on linear_regression, where the exercise asks for your own sigmoid (by hand)."""
def logistic_regression(x, w, b):
    return torch.sigmoid(linear_regression(x, w, b))
