"""Chaff: divides by the variance std**2."""
def standardize(x, mean, std):
    return (x - mean) / std ** 2
