"""Chaff: adds 1e-9 inside the log "for safety": a confident wrong prediction costs far less than it should."""
def cross_entropy(probas, y_onehot):
    return -(y_onehot * torch.log(probas + 1e-9)).sum(dim=1).mean()
