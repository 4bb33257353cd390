"""Wheat: float64 casts, mean/std reshaped to a (1, D) row."""
def standardize(x, mean, std):
    row_mean = mean.double().reshape(1, -1)
    row_std = std.double().reshape(1, -1)
    return (x.double() - row_mean) / row_std
