"""Chaff: _logit_cost keeps a dimension, shape (1,) where a 0-d tensor is asked."""
class LogisticRegression1:
    """Logistic regression with a hand-written forward and backward pass, trained on minibatches.

    Parameters, created in __init__:
        self.weights: shape (1, num_features), zeros (one row, one weight per feature).
        self.bias:    shape (1,), zero.
    Every method must use self.weights and self.bias as they are when it is called: the tests
    replace them by float64 tensors of the same shapes (and then pass float64 inputs).
    """

    def __init__(self, num_features: int):
        self.weights = torch.zeros((1, num_features), dtype=torch.float32)
        self.bias = torch.zeros((1,), dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of class 1, sigmoid of the net inputs x w^T + b.

        x: shape (N, num_features). Returns probas of shape (N,).
        """
        z = torch.matmul(x, self.weights.T).flatten() + self.bias  # (N,)
        return torch.sigmoid(z)

    def backward(self, x: torch.Tensor, y: torch.Tensor, probas: torch.Tensor):
        """Gradients of the MEAN negative log-likelihood of a batch
        L = -(1/N) sum_i [y_i log(p_i) + (1 - y_i) log(1 - p_i)]  with respect to the weights and the bias.

        x: shape (N, num_features); y: shape (N,), labels 0. or 1.; probas: shape (N,), from forward(x).
        Returns (grad_loss_wrt_w, grad_loss_wrt_b):
            grad_loss_wrt_w has shape (1, num_features), the shape of self.weights (not (num_features, 1));
            grad_loss_wrt_b holds one number: shape (1,) like self.bias (a 0-d tensor is accepted too).
        Modifies neither its inputs nor the parameters.
        """
        errors = (probas - y).reshape(1, -1)  # dL/dz_i = (p_i - y_i) / N, before the 1/N
        n = x.shape[0]
        grad_loss_wrt_w = torch.matmul(errors, x) / n  # (1, N) @ (N, D) -> (1, D)
        grad_loss_wrt_b = errors.sum(dim=1) / n  # (1,)
        return grad_loss_wrt_w, grad_loss_wrt_b

    def predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        """Class labels: 1 where probas >= 0.5 (so exactly 0.5 gives 1), else 0.

        x: shape (N, num_features). Returns a tensor of shape (N,) holding 0 and 1
        (integer, float or bool dtype).
        """
        return (self.forward(x) >= 0.5).long()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy: the share of samples whose predicted label equals y, as a Python float in [0, 1].

        x: shape (N, num_features); y: shape (N,), labels 0. or 1.
        """
        correct = self.predict_labels(x).flatten() == y.flatten()
        return float(correct.sum()) / len(correct)

    def _logit_cost(self, y: torch.Tensor, probas: torch.Tensor) -> torch.Tensor:
        """The MEAN negative log-likelihood (binary cross-entropy) of probas, a 0-d tensor.

        y, probas: shape (N,).
        """
        log_likelihoods = y * torch.log(probas) + (1 - y) * torch.log(1 - probas)
        return -log_likelihoods.mean(dim=0, keepdim=True)  # shape (1,), not 0-d

    def train(self, x: torch.Tensor, y: torch.Tensor, num_epochs: int, learning_rate: float,
              batch_size: int) -> list:
        """Minibatch gradient descent on the mean negative log-likelihood.

        Every epoch: first record the cost of the current parameters on ALL of x (the mean over the N
        samples); then go through the samples IN ORDER, batch_size at a time (samples 0..batch_size-1,
        then the next ones; the last batch may be smaller), and for every batch: probas = forward(batch),
        gradients with backward on that batch, weights <- weights - learning_rate * grad_w and
        bias <- bias - learning_rate * grad_b. batch_size >= N is full-batch gradient descent.
        Starts from the current parameters (calling train twice trains longer).
        x: shape (N, num_features); y: shape (N,).
        Returns a list of num_epochs Python floats: costs[e] is the cost on all of x at the START of
        epoch e, so costs[0] is the cost of the initial parameters.
        """
        costs = []
        for _ in range(num_epochs):
            costs.append(float(self._logit_cost(y, self.forward(x))))
            for start in range(0, x.shape[0], batch_size):
                x_batch, y_batch = x[start:start + batch_size], y[start:start + batch_size]
                grad_w, grad_b = self.backward(x_batch, y_batch, self.forward(x_batch))
                self.weights = self.weights - learning_rate * grad_w
                self.bias = self.bias - learning_rate * grad_b
        return costs
