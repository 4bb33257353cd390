"""Chaff: train_model2 computes the logistic-regression gradient by hand instead of using autograd."""
# Visibly silent: on the plain logistic model a student can check, the hand-written gradient IS
# autograd's; only a model of another shape (a hidden test's trainable scale) tells them apart.


class LogisticRegression2(torch.nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.linear = torch.nn.Linear(num_features, 1)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x):
        return torch.sigmoid(self.linear(x)).view(-1)


def train_model2(model, x, y, num_epochs, learning_rate, batch_size):
    layer = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    losses = []
    for _ in range(num_epochs):
        with torch.no_grad():
            losses.append(F.binary_cross_entropy(model(x), y).item())
            for start in range(0, len(x), batch_size):
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                err = (model(xb) - yb) / len(xb)
                layer.weight -= learning_rate * (err @ xb).view(1, -1)
                layer.bias -= learning_rate * err.sum().view(1)
    return losses
