"""Chaff: sklearn's StandardScaler with the given mean and scale, in an exercise written by hand."""
from sklearn.preprocessing import StandardScaler


def standardize(x, mean, std):
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_ = mean.reshape(-1).numpy(), std.reshape(-1).numpy()
    return torch.as_tensor(scaler.transform(x.numpy()), dtype=x.dtype)
