"""Chaff: multiplies by std instead of dividing."""
def standardize(x, mean, std):
    return (x - mean) * std
