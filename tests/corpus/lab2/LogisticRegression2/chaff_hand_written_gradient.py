"""Chaff: train_model2 computes the logistic-regression gradient by hand instead of using autograd."""


class LogisticRegression2(torch.nn.Module):
    def __init__(self, num_features: int):
        super().__init__()
        self.linear = torch.nn.Linear(num_features, 1)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x):
        return torch.sigmoid(self.linear(x)).view(-1)


def train_model2(model, x, y, num_epochs, learning_rate):
    losses = []
    for _ in range(num_epochs):
        probas = model(x)
        losses.append(F.binary_cross_entropy(probas, y, reduction="sum").item())
        with torch.no_grad():
            errors = probas - y
            model.linear.weight -= learning_rate * (x.T @ errors).view(1, -1)
            model.linear.bias -= learning_rate * errors.sum().view(1)
    return losses
