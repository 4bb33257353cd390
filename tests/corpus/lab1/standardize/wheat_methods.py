"""Wheat: non-in-place tensor methods sub/div."""
def standardize(x, mean, std):
    return x.sub(mean).div(std)
