"""Wheat: torch.var_mean with keepdim, (1, D) results."""
variance, mean = torch.var_mean(X_train_raw, dim=0, correction=0, keepdim=True)
std = variance.sqrt()
