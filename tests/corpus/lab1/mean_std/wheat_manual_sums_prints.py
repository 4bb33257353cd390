"""Wheat: manual population std from sums, printing the results."""
n_samples = X_train_raw.shape[0]
mean = X_train_raw.sum(dim=0) / n_samples
std = torch.sqrt(((X_train_raw - mean) ** 2).sum(dim=0) / n_samples)
print("mean:", mean)
print("std:", std)
