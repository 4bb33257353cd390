"""Chaff: returns the logits z, forgets the sigmoid."""
def logistic_regression(x, w, b):
    return linear_regression(x, w, b)
