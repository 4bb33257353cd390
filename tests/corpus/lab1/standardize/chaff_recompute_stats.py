"""Chaff: ignores mean/std and recomputes them from x."""
def standardize(x, mean, std):
    return (x - x.mean(dim=0)) / x.std(dim=0)
