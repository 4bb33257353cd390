"""Wheat: in-place operations on a copy, printing while it works."""
def standardize(x, mean, std):
    result = x.clone()
    print("standardizing", tuple(result.shape))
    result -= mean
    result /= std
    return result
