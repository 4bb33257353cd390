"""Wheat: TensorDataset + DataLoader(shuffle=False) for the batches, no_grad zeroing, zero_grad after the step."""


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
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size, shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    optimizer.zero_grad()
    history = []
    for _ in range(num_epochs):
        history.append(F.binary_cross_entropy(model(x), y).item())
        for xb, yb in loader:
            F.binary_cross_entropy(model(xb), yb).backward()
            optimizer.step()
            optimizer.zero_grad()
    return history
