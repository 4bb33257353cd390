"""Wheat: nn.Sequential(Linear, Sigmoid, Flatten) with nn.init.zeros_, model.zero_grad(), nn.BCELoss(), a new SGD per epoch."""


class LogisticRegression2(torch.nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(num_features, 1), torch.nn.Sigmoid(), torch.nn.Flatten(0))
        torch.nn.init.zeros_(self.net[0].weight)
        torch.nn.init.zeros_(self.net[0].bias)

    def forward(self, x):
        return self.net(x)


def train_model2(model, x, y, num_epochs, learning_rate, batch_size):
    criterion = torch.nn.BCELoss()
    losses = []
    for _ in range(num_epochs):
        optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)  # plain SGD keeps no state
        with torch.no_grad():
            losses.append(criterion(model(x), y).item())
        for i in range(0, x.shape[0], batch_size):
            model.zero_grad()
            criterion(model(x[i:i + batch_size]), y[i:i + batch_size]).backward()
            optimizer.step()
    return losses
