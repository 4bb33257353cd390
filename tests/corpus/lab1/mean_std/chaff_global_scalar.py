"""Chaff: one mean and std over all features together."""
mean = X_train_raw.mean()
std = X_train_raw.std(correction=0)
