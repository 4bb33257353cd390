"""Chaff: returns the probability of class 0."""
def logistic_regression(x, w, b):
    return 1 - sigmoid(linear_regression(x, w, b))
