"""Chaff: modifies the caller's x in place."""
def standardize(x, mean, std):
    x -= mean
    x /= std
    return x
