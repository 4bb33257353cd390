"""Chaff: F.linear, in an exercise written by hand (a matrix product and a sum)."""
def linear_regression(x, w, b):
    return F.linear(x, w.T, b.reshape(-1))
