"""Chaff: torch.softmax over the classes, in an exercise written by hand."""
def softmax(z):
    return torch.softmax(z, dim=1)
