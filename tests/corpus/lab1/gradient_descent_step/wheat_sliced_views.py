"""Wheat: new parameters built as slices of one stacked tensor (non-unit strides, size-1 dimensions)."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    n = x.shape[0]
    y_pred = 1 / (1 + torch.exp(-(x @ w + b)))
    loss = -(y * torch.log(y_pred) + (1 - y) * torch.log(1 - y_pred)).mean()
    error = y_pred - y
    stacked = torch.cat([w - learning_rate * (x.T @ error) / n,
                         b - learning_rate * error.mean(dim=0, keepdim=True)], dim=0).T
    return loss, stacked[:, :-1].T, stacked[:, -1:]
