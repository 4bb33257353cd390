"""Wheat: torch.mm and broadcasting (errors as a column), float labels, mean of matches for the accuracy."""


class LogisticRegression1:
    def __init__(self, num_features):
        self.num_features = num_features
        self.weights = torch.zeros(1, num_features)
        self.bias = torch.zeros(1)

    def forward(self, x):
        z = torch.add(torch.mm(x, self.weights.T), self.bias)  # (N, 1)
        return torch.sigmoid(z).flatten()

    def backward(self, x, y, probas):
        errors = (probas - y).reshape(-1, 1)                      # (N, 1)
        grad_loss_wrt_w = (errors * x).sum(dim=0).reshape(1, -1)  # (1, D)
        grad_loss_wrt_b = errors.sum().reshape(1)                 # (1,)
        return grad_loss_wrt_w, grad_loss_wrt_b

    def predict_labels(self, x):
        return (self.forward(x) >= 0.5).float()

    def evaluate(self, x, y):
        return (self.predict_labels(x) == y).float().mean().item()

    def _logit_cost(self, y, probas):
        log_likelihood = torch.where(y == 1, torch.log(probas), torch.log(1 - probas))
        return -log_likelihood.sum()

    def train(self, x, y, num_epochs, learning_rate):
        costs = []
        for _ in range(num_epochs):
            probas = self.forward(x)
            cost = self._logit_cost(y, probas)
            grads = self.backward(x, y, probas)
            self.weights = self.weights - learning_rate * grads[0]
            self.bias = self.bias - learning_rate * grads[1]
            costs.append(cost.item())
        return costs
