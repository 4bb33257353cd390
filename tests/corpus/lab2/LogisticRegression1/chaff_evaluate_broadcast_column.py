"""Chaff: evaluate compares labels (N,) with y as a column (N, 1): broadcasting to (N, N) counts wrongly."""

class LogisticRegression1:
    """Logistic regression with a hand-written forward and backward pass.

    Parameters, created in __init__:
        self.weights: shape (1, num_features), zeros (one row, one weight per feature).
        self.bias:    shape (1,), zero.
    Every method must use self.weights and self.bias as they are when it is called: the tests
    replace them by float64 tensors of the same shapes (and then pass float64 inputs).
    """

    def __init__(self, num_features: int):
        self.num_features = num_features
        self.weights = torch.zeros(1, num_features)
        self.bias = torch.zeros(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of class 1: probas = sigmoid(x @ weights.T + bias).

        x: shape (N, num_features). Returns probas of shape (N,).
        """
        net_inputs = (x @ self.weights.T + self.bias).view(-1)  # (N, 1) -> (N,)
        probas = torch.sigmoid(net_inputs)
        return probas

    def backward(self, x: torch.Tensor, y: torch.Tensor, probas: torch.Tensor):
        """Gradients of the SUMMED negative log-likelihood
        L = -sum_i [y_i log(p_i) + (1 - y_i) log(1 - p_i)]  with respect to the weights and the bias.

        x: shape (N, num_features); y: shape (N,), labels 0. or 1.; probas: shape (N,), from forward(x).
        Returns (grad_loss_wrt_w, grad_loss_wrt_b):
            grad_loss_wrt_w has shape (1, num_features), the shape of self.weights (not (num_features, 1));
            grad_loss_wrt_b holds one number: shape (1,) like self.bias (a 0-d tensor is accepted too).
        Modifies neither its inputs nor the parameters.
        """
        grad_loss_wrt_z = probas.view(-1) - y.view(-1)           # dL/dz_i = p_i - y_i, shape (N,)
        grad_loss_wrt_w = (x.T @ grad_loss_wrt_z.view(-1, 1)).T  # (D, 1) -> (1, D)
        grad_loss_wrt_b = torch.sum(grad_loss_wrt_z).view(1)      # (1,)
        return grad_loss_wrt_w, grad_loss_wrt_b

    def predict_labels(self, x: torch.Tensor) -> torch.Tensor:
        """Class labels: 1 where probas >= 0.5 (so exactly 0.5 gives 1), else 0.

        x: shape (N, num_features). Returns a tensor of shape (N,) holding 0 and 1
        (integer, float or bool dtype).
        """
        probas = self.forward(x)
        labels = torch.where(probas >= 0.5, 1, 0)
        return labels

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy: the share of samples whose predicted label equals y, as a Python float in [0, 1].

        x: shape (N, num_features); y: shape (N,), labels 0. or 1.
        """
        labels = self.predict_labels(x)
        accuracy = (labels.view(-1) == y.view(-1, 1)).float().mean()
        return accuracy.item()

    def _logit_cost(self, y: torch.Tensor, probas: torch.Tensor) -> torch.Tensor:
        """The summed negative log-likelihood (binary cross-entropy) of probas, a 0-d tensor.

        y, probas: shape (N,).
        """
        return -torch.sum(y * torch.log(probas) + (1 - y) * torch.log(1 - probas))

    def train(self, x: torch.Tensor, y: torch.Tensor, num_epochs: int, learning_rate: float) -> list:
        """Full-batch gradient descent on the summed negative log-likelihood.

        Every epoch: probas = forward(x); record the cost of the current parameters; gradients with
        backward; then weights <- weights - learning_rate * grad_w and bias <- bias - learning_rate * grad_b.
        Starts from the current parameters (calling train twice trains longer).
        x: shape (N, num_features); y: shape (N,).
        Returns a list of num_epochs Python floats: costs[e] is the cost at the START of epoch e
        (before that epoch's update), so costs[0] is the cost of the initial parameters.
        """
        epoch_costs = []
        for _ in range(num_epochs):
            probas = self.forward(x)
            epoch_costs.append(self._logit_cost(y, probas).item())
            grad_w, grad_b = self.backward(x, y, probas)
            self.weights = self.weights - learning_rate * grad_w
            self.bias = self.bias - learning_rate * grad_b
        return epoch_costs
