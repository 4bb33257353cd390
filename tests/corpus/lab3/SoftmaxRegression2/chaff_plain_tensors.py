"""Chaff: plain tensors instead of a registered Linear layer."""
class SoftmaxRegression2(torch.nn.Module):
    """Softmax regression with torch.nn: one torch.nn.Linear layer that returns LOGITS."""

    def __init__(self, num_features: int, num_classes: int):
        """A torch.nn.Linear(num_features, num_classes) submodule with zero weights and zero bias."""
        super().__init__()
        self.weight = torch.zeros(num_classes, num_features, requires_grad=True)
        self.bias = torch.zeros(num_classes, requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, D) -> logits (N, K), NOT probabilities: F.cross_entropy applies the softmax itself."""
        return x @ self.weight.T + self.bias
