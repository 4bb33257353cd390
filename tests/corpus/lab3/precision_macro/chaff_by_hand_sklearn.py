"""Chaff: sklearn's precision_score with macro averaging, in an exercise written by hand."""
from sklearn.metrics import precision_score


def precision_macro(y_pred, y_true, num_classes):
    return torch.tensor(precision_score(y_true.numpy(), y_pred.numpy(), labels=list(range(num_classes)),
                                        average="macro", zero_division=0))
