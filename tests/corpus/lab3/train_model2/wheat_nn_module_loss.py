"""Wheat: torch.nn.CrossEntropyLoss module, each loss turned into a Python float with float(...)."""
def train_model2(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 num_epochs: int, learning_rate: float) -> list[float]:
    """Full-batch training with torch.optim.SGD on the mean F.cross_entropy(model(x), y).

    Args:
        model: a torch.nn.Module whose forward returns logits (N, K).
        x: (N, D) inputs; y: (N,) class labels (torch.long). Neither may be modified.
        num_epochs: number of updates; learning_rate: the SGD step size.

    Returns:
        The loss of every epoch (a list of num_epochs Python floats), each computed before
        that epoch's update.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
    losses = []
    criterion = torch.nn.CrossEntropyLoss()
    for _ in range(num_epochs):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses
