"""Wheat: torch.std with correction=0."""
mean = X_train_raw.mean(dim=0)
std = X_train_raw.std(dim=0, correction=0)
