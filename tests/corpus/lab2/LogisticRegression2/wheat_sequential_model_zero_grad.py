"""Wheat: nn.Sequential(Linear, Sigmoid) with nn.init.zeros_, model.zero_grad(), nn.BCELoss(reduction='sum')."""


class LogisticRegression2(torch.nn.Module):
    def __init__(self, num_features: int):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(num_features, 1), torch.nn.Sigmoid())
        torch.nn.init.zeros_(self.net[0].weight)
        torch.nn.init.zeros_(self.net[0].bias)

    def forward(self, x):
        return self.net(x).squeeze(1)


def train_model2(model, x, y, num_epochs, learning_rate):
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    criterion = torch.nn.BCELoss(reduction="sum")
    losses = []
    for _ in range(num_epochs):
        model.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses
