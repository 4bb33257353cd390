"""Chaff: ignores the mean and std it is given and standardizes x with its own statistics."""
def standardize(x, mean, std):
    return (x - x.mean(dim=0)) / x.std(dim=0, correction=0)
