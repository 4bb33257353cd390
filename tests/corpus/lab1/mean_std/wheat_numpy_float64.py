"""Wheat: numpy in float64 (np.std divides by N), converted to tensors."""
import numpy as np

values = X_train_raw.numpy().astype(np.float64)
mean = torch.from_numpy(values.mean(axis=0))
std = torch.from_numpy(values.std(axis=0))
