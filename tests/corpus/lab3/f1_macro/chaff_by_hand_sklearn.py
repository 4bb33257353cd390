"""Chaff: sklearn's f1_score with macro averaging, in an exercise written by hand."""
import sklearn.metrics as skm


def f1_macro(y_pred, y_true, num_classes):
    return torch.tensor(skm.f1_score(y_true.numpy(), y_pred.numpy(), labels=list(range(num_classes)),
                                     average="macro", zero_division=0))
