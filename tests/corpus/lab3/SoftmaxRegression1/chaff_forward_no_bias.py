"""Chaff: forward forgets the bias (it stays at zero in the zero-parameter example)."""
class SoftmaxRegression1:
    """Softmax regression from scratch: probas = softmax(x @ weights.T + bias)."""

    def __init__(self, num_features: int, num_classes: int):
        """weights: zeros of shape (num_classes, num_features); bias: zeros of shape (num_classes,); float32."""
        self.num_features = num_features
        self.num_classes = num_classes
        self.weights = torch.zeros(num_classes, num_features, dtype=torch.float32)
        self.bias = torch.zeros(num_classes, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, D) -> class probabilities (N, K), with your softmax."""
        logits = x @ self.weights.T  # (N, K): the bias is forgotten
        return softmax(logits)

    def backward(self, x: torch.Tensor, y_onehot: torch.Tensor,
                 probas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients of the MEAN cross-entropy over the N samples.

        Args:
            x: (N, D) inputs; y_onehot: (N, K) one-hot targets; probas: (N, K) = self.forward(x).
            None of them may be modified.

        Returns:
            (grad_w, grad_b): grad_w of shape (K, D), grad_b of shape (K,).
        """
        error = probas - y_onehot  # (N, K): gradient of each sample's loss w.r.t. its logits
        grad_w = error.T @ x / x.shape[0]
        grad_b = error.mean(dim=0)
        return grad_w, grad_b

    def predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, D) -> predicted class of every sample (the most probable one), shape (N,), torch.long."""
        return torch.argmax(self.forward(x), dim=1)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy on (x, y), y of shape (N,) with class labels: a Python float in [0, 1]."""
        return (self.predict_labels(x) == y).float().mean().item()

    def train(self, x: torch.Tensor, y: torch.Tensor, num_epochs: int, learning_rate: float) -> list[float]:
        """Full-batch gradient descent on the mean cross-entropy.

        Args:
            x: (N, D) inputs; y: (N,) class labels (torch.long). Neither may be modified.
            num_epochs: number of updates; learning_rate: step size.

        Returns:
            The cost of every epoch (a list of num_epochs Python floats), each computed with the
            parameters the epoch started with, i.e. before that epoch's update.
        """
        y_onehot = one_hot(y, self.num_classes)
        costs = []
        for _ in range(num_epochs):
            probas = self.forward(x)
            costs.append(cross_entropy(probas, y_onehot).item())
            grad_w, grad_b = self.backward(x, y_onehot, probas)
            self.weights = self.weights - learning_rate * grad_w
            self.bias = self.bias - learning_rate * grad_b
        return costs
