"""Wheat: formulas inline in float64, printing the loss."""
def gradient_descent_step(x, y, w, b, learning_rate=1e-3):
    x64, y64 = x.double(), y.double()
    p = 1 / (1 + torch.exp(-(x64 @ w.double() + b.double())))
    loss = -(y64 * torch.log(p) + (1 - y64) * torch.log(1 - p)).mean()
    print(f"loss {loss.item():.4f}")
    error = p - y64
    return loss, w - learning_rate * (x64.T @ error) / len(x64), b - learning_rate * error.mean()
