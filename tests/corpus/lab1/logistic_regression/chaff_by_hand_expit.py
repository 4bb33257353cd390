"""Chaff: torch.special.expit where the exercise asks for your own sigmoid (by hand)."""
def logistic_regression(x, w, b):
    z = torch.matmul(x, w) + b
    print("mean logit", z.mean().item())
    return torch.special.expit(z)
