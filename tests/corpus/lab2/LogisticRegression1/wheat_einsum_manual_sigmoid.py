"""Wheat: einsum for the net input and the gradient, a hand-written sigmoid, >= written as ~(p < 0.5)."""


class LogisticRegression1:
    def __init__(self, num_features):
        self.num_features = num_features
        self.weights = torch.zeros(1, num_features)
        self.bias = torch.zeros(1)

    def forward(self, x):
        z = torch.einsum("nd,d->n", x, self.weights[0]) + self.bias
        return 1.0 / (1.0 + torch.exp(-z))

    def backward(self, x, y, probas):
        err = probas - y
        grad_w = torch.einsum("n,nd->d", err, x).unsqueeze(0) / len(y)
        grad_b = err.mean().reshape(1)
        return grad_w, grad_b

    def predict_labels(self, x):
        return (~(self.forward(x) < 0.5)).int()

    def evaluate(self, x, y):
        return (self.predict_labels(x) == y).float().mean().item()

    def _logit_cost(self, y, probas):
        return F.binary_cross_entropy(probas, y)

    def train(self, x, y, num_epochs, learning_rate, batch_size):
        out = []
        n = len(y)
        for _ in range(num_epochs):
            out.append(self._logit_cost(y, self.forward(x)).item())
            start = 0
            while start < n:
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
                gw, gb = self.backward(xb, yb, self.forward(xb))
                self.weights = self.weights - learning_rate * gw
                self.bias = self.bias - learning_rate * gb
                start += batch_size
        return out
