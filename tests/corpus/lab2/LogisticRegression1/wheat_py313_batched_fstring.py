"""Wheat [full]: Python 3.12+ as Colab runs it, itertools.batched minibatches and an f-string reusing its quotes."""

import itertools


class LogisticRegression1:
    def __init__(self, num_features):
        self.weights = torch.zeros(1, num_features)
        self.bias = torch.zeros(1)

    def forward(self, x):
        z = (x @ self.weights.T).squeeze(1) + self.bias
        return 1 / (1 + torch.exp(-z))

    def backward(self, x, y, probas):
        errors = probas - y
        return (errors @ x).unsqueeze(0) / len(y), errors.mean().reshape(1)

    def predict_labels(self, x):
        return (self.forward(x) >= 0.5).float()

    def evaluate(self, x, y):
        return (self.predict_labels(x) == y).float().mean().item()

    def _logit_cost(self, y, probas):
        return -(y * torch.log(probas) + (1 - y) * torch.log(1 - probas)).mean()

    def train(self, x, y, num_epochs, learning_rate, batch_size, verbose=False):
        history = {"cost": []}
        for epoch in range(num_epochs):
            history["cost"].append(self._logit_cost(y, self.forward(x)).item())
            if verbose:
                print(f"epoch {epoch}: cost {history["cost"][-1]:.4f}")
            for batch in itertools.batched(range(len(y)), batch_size):
                rows = list(batch)
                grad_w, grad_b = self.backward(x[rows], y[rows], self.forward(x[rows]))
                self.weights = self.weights - learning_rate * grad_w
                self.bias = self.bias - learning_rate * grad_b
        return history["cost"]
