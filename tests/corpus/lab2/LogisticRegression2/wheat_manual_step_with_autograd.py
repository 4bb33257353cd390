"""Wheat: gradients from loss.backward(), the SGD step written by hand, gradients set to None after the step."""


class LogisticRegression2(torch.nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.linear = torch.nn.Linear(num_features, 1)
        self.linear.weight.data.fill_(0.0)
        self.linear.bias.data.fill_(0.0)

    def forward(self, x):
        return torch.sigmoid(self.linear(x)).reshape(-1)


def train_model2(model, x, y, num_epochs, learning_rate, batch_size):
    losses = []
    for _ in range(num_epochs):
        p = model(x).detach()
        losses.append(float(-torch.mean(y * torch.log(p) + (1 - y) * torch.log(1 - p))))
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            loss = -torch.mean(yb * torch.log(model(xb)) + (1 - yb) * torch.log(1 - model(xb)))
            loss.backward()
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter -= learning_rate * parameter.grad
                    parameter.grad = None
    return losses
