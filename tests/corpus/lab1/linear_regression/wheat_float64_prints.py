"""Wheat: float64 casts, printing shapes."""
def linear_regression(x, w, b):
    z = x.double() @ w.double() + b.double()
    print("z has shape", tuple(z.shape))
    return z
