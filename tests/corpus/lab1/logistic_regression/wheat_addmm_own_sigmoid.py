"""Wheat: torch.addmm for the logits, then the student's own sigmoid, printing a shape."""
def logistic_regression(x, w, b):
    logits = torch.addmm(b, x, w)
    print("logits", tuple(logits.shape))
    return sigmoid(logits)
