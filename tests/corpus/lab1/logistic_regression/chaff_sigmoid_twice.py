"""Chaff: applies the sigmoid twice."""
def logistic_regression(x, w, b):
    return sigmoid(sigmoid(linear_regression(x, w, b)))
