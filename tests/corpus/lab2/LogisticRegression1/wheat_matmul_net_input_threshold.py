"""Wheat: torch.matmul, 0-d bias gradient, threshold on the net input (z >= 0), in-place updates, BCE cost."""


class LogisticRegression1:
    def __init__(self, num_features: int):
        self.weights = torch.zeros((1, num_features), dtype=torch.float32)
        self.bias = torch.zeros(1, dtype=torch.float32)

    def _net_input(self, x):
        return torch.matmul(x, self.weights.t()).view(-1) + self.bias

    def forward(self, x):
        """x: (N, D) -> probas (N,)."""
        return torch.sigmoid(self._net_input(x))

    def backward(self, x, y, probas):
        """(1, D) weight gradient and a 0-d bias gradient of the summed loss."""
        grad_loss_wrt_z = probas.view(-1) - y.view(-1)
        grad_loss_wrt_w = torch.matmul(grad_loss_wrt_z, x).view(1, -1)
        grad_loss_wrt_b = torch.sum(grad_loss_wrt_z)
        return grad_loss_wrt_w, grad_loss_wrt_b

    def predict_labels(self, x):
        # p >= 0.5 exactly when z >= 0
        return torch.where(self._net_input(x) >= 0.0, 1, 0)

    def evaluate(self, x, y):
        predictions = self.predict_labels(x).view(-1)
        return torch.sum(predictions == y.view(-1)).float().item() / x.size(0)

    def _logit_cost(self, y, probas):
        return F.binary_cross_entropy(probas, y, reduction="sum")

    def train(self, x, y, num_epochs, learning_rate):
        epoch_cost = []
        for _ in range(num_epochs):
            probas = self.forward(x)
            epoch_cost.append(self._logit_cost(y, probas).item())
            grad_w, grad_b = self.backward(x, y, probas)
            self.weights -= learning_rate * grad_w
            self.bias -= learning_rate * grad_b
        return epoch_cost
