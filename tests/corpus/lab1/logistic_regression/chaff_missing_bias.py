"""Chaff: forgets the bias."""
def logistic_regression(x, w, b):
    return sigmoid(x @ w)
