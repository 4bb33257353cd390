"""Chaff: sklearn.metrics precision_score and recall_score, in an exercise written by hand."""
import sklearn.metrics


def precision(labels_pred, y_true):
    return torch.tensor(sklearn.metrics.precision_score(y_true.reshape(-1).numpy(), labels_pred.reshape(-1).numpy(),
                                                        zero_division=0))


def recall(labels_pred, y_true):
    return torch.tensor(sklearn.metrics.recall_score(y_true.reshape(-1).numpy(), labels_pred.reshape(-1).numpy(),
                                                     zero_division=0))
