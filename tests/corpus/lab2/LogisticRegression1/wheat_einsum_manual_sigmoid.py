"""Wheat: einsum for the net input and the gradient, a hand-written sigmoid, >= written as ~(p < 0.5)."""


class LogisticRegression1:
    """Logistic regression by hand: weights (1, D), bias (1,), both zero at the start."""

    def __init__(self, num_features: int):
        self.num_features = num_features
        self.weights = torch.zeros(1, num_features)
        self.bias = torch.zeros(1)

    def _sigmoid(self, z):
        return 1.0 / (1.0 + torch.exp(-z))

    def forward(self, x):
        """x: (N, D) -> probas (N,)."""
        net_inputs = torch.einsum("nd,kd->n", x, self.weights) + self.bias
        return self._sigmoid(net_inputs)

    def backward(self, x, y, probas):
        """Gradients of the summed NLL: (1, D) and (1,)."""
        errors = probas - y
        grad_loss_wrt_w = torch.einsum("n,nd->d", errors, x).unsqueeze(0)
        grad_loss_wrt_b = errors.sum(dim=0, keepdim=True)
        return grad_loss_wrt_w, grad_loss_wrt_b

    def predict_labels(self, x):
        """(N,) bool-then-long labels: 1 where probas >= 0.5."""
        return (~(self.forward(x) < 0.5)).long()

    def evaluate(self, x, y):
        correct = torch.sum(self.predict_labels(x) == y)
        return float(correct) / y.shape[0]

    def _logit_cost(self, y, probas):
        return -(y @ torch.log(probas) + (1 - y) @ torch.log(1 - probas))

    def train(self, x, y, num_epochs, learning_rate):
        costs = []
        for _ in range(num_epochs):
            probas = self.forward(x)
            costs.append(float(self._logit_cost(y, probas)))
            grad_w, grad_b = self.backward(x, y, probas)
            self.weights = self.weights - learning_rate * grad_w
            self.bias = self.bias - learning_rate * grad_b
        return costs
