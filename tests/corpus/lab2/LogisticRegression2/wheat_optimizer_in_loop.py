"""Wheat: a new SGD optimizer every epoch (plain SGD keeps no state), zero_grad(set_to_none=False), mean * N."""


class LogisticRegression2(torch.nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.linear = torch.nn.Linear(num_features, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.zeros(1, num_features))
            self.linear.bias.copy_(torch.zeros(1))

    def forward(self, x):
        logits = self.linear(x)
        return torch.sigmoid(logits)[:, 0]


def train_model2(model, x, y, num_epochs, learning_rate):
    history = []
    for _ in range(num_epochs):
        optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
        optimizer.zero_grad(set_to_none=False)
        loss = F.binary_cross_entropy(model(x), y) * len(y)  # the mean times N is the sum
        loss.backward()
        optimizer.step()
        history.append(loss.detach().item())
    return history
