"""Chaff: forward returns probabilities of shape (N, 1), not (N,) as the docstring asks; the loop reshapes y."""

class LogisticRegression2(torch.nn.Module):
    """Logistic regression from torch.nn building blocks; autograd computes the gradients.

    self.linear = torch.nn.Linear(num_features, 1), with weight (1, num_features) and bias (1,)
    set to zeros (nn.Linear starts from small random numbers; zeros match model 1).
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.linear = torch.nn.Linear(num_features, 1)
        with torch.no_grad():  # an in-place change of a parameter must not be recorded by autograd
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: shape (N, num_features). Returns probas = sigmoid(linear(x)) of shape (N,)."""
        logits = self.linear(x)
        probas = torch.sigmoid(logits)
        return probas


def train_model2(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 num_epochs: int, learning_rate: float) -> list:
    """Train `model` with autograd: full-batch gradient descent on the SUMMED binary cross-entropy.

    model: any torch.nn.Module whose forward maps x of shape (N, D) to probabilities of shape (N,)
        (the tests also pass models other than LogisticRegression2, so do not compute gradients by hand:
        use loss.backward()). All of model.parameters() are trained.
    Every epoch: probas = model(x); loss = F.binary_cross_entropy(probas, y.view(-1, 1), reduction="sum");
    clear old gradients; loss.backward(); one torch.optim.SGD(model.parameters(), lr=learning_rate) step.
    Returns a list of num_epochs Python floats: the loss of each epoch (before its update).
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    epoch_losses = []
    for _ in range(num_epochs):
        probas = model(x)
        loss = F.binary_cross_entropy(probas, y.view(-1, 1), reduction="sum")
        optimizer.zero_grad()  # otherwise backward() adds to the previous epoch's gradients
        loss.backward()
        optimizer.step()
        epoch_losses.append(loss.item())
    return epoch_losses
