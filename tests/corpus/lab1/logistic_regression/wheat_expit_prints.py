"""Wheat: torch.special.expit and matmul, printing."""
def logistic_regression(x, w, b):
    z = torch.matmul(x, w) + b
    print("mean logit", z.mean().item())
    return torch.special.expit(z)
