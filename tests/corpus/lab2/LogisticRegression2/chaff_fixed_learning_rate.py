"""Chaff: SGD built with the lecture's lr=0.1 instead of the learning_rate argument."""


class LogisticRegression2(torch.nn.Module):
    """Logistic regression from torch.nn building blocks; autograd computes the gradients.

    self.linear = torch.nn.Linear(num_features, 1), with weight (1, num_features) and bias (1,)
    set to zeros (nn.Linear starts from small random numbers; zeros match model 1).
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.linear = torch.nn.Linear(num_features, 1)
        torch.nn.init.zeros_(self.linear.weight)  # in place, without recording it for autograd
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: shape (N, num_features). Returns probas = sigmoid(linear(x)) of shape (N,)."""
        return torch.sigmoid(self.linear(x)).flatten()


def train_model2(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 num_epochs: int, learning_rate: float, batch_size: int) -> list:
    """Train `model` with autograd: minibatch SGD on the MEAN binary cross-entropy.

    model: any torch.nn.Module whose forward maps x of shape (N, D) to probabilities of shape (N,)
        (the tests also pass models other than LogisticRegression2, so do not compute gradients by hand:
        use loss.backward()). All of model.parameters() are trained by one
        torch.optim.SGD(model.parameters(), lr=learning_rate).
    Every epoch: first record the mean binary cross-entropy of model(x) on ALL of x (no gradient
    needed for it); then go through the samples IN ORDER, batch_size at a time (the last batch may
    be smaller), and for every batch take one SGD step on F.binary_cross_entropy(model(x_batch), y_batch).
    Returns a list of num_epochs Python floats: the loss on all of x at the start of each epoch.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    epoch_losses = []
    for _ in range(num_epochs):
        with torch.no_grad():
            epoch_losses.append(F.binary_cross_entropy(model(x), y).item())
        for start in range(0, len(x), batch_size):
            batch = slice(start, start + batch_size)
            loss = F.binary_cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()  # backward() adds to .grad: without this, old batches keep pushing
            loss.backward()
            optimizer.step()
    return epoch_losses
