"""Chaff: sklearn's recall_score with macro averaging, in an exercise written by hand."""
from sklearn import metrics


def recall_macro(y_pred, y_true, num_classes):
    return torch.tensor(metrics.recall_score(y_true.numpy(), y_pred.numpy(), labels=list(range(num_classes)),
                                             average="macro", zero_division=0))
