"""Wheat: the student's own linear_regression and sigmoid, composed."""
def logistic_regression(x, w, b):
    return sigmoid(linear_regression(x, w, b))
