"""Chaff: reduces over the features (dim=1) instead of the samples."""
mean = X_train_raw.mean(dim=1)
std = X_train_raw.std(dim=1, correction=0)
