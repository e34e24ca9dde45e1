"""Clinical metrics of a model variant from its outputs on a labelled split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.models import OutputKind


def probabilities(outputs: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Class probabilities (N, C) from a model's raw outputs; C is 2 for one output unit."""
    out = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if out.shape[1] == 1:
        p1 = out[:, 0] if kind is OutputKind.SIGMOID else 1.0 / (1.0 + np.exp(-out[:, 0]))
        return np.stack([1.0 - p1, p1], axis=1)
    if kind is OutputKind.SOFTMAX:
        return out
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def predictions(probs: np.ndarray, positive_class: int, decision_threshold: float) -> np.ndarray:
    """Binary: positive when its probability reaches the threshold. Multi-class: argmax."""
    if probs.shape[1] == 2:
        other = 1 - positive_class
        return np.where(probs[:, positive_class] >= decision_threshold, positive_class, other)
    return probs.argmax(axis=1)


@dataclass(frozen=True)
class Metrics:
    """Metrics of one variant on one split."""

    values: dict[str, Any]
    predictions: np.ndarray

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


def evaluate(probs: np.ndarray, y: np.ndarray, *, positive_class: int = 1,
             decision_threshold: float = 0.5,
             reference_predictions: np.ndarray | None = None) -> Metrics:
    """Accuracy, balanced accuracy, AUROC, sensitivity/specificity, confusion matrix.

    Args:
        probs: class probabilities (N, C).
        y: integer labels (N,).
        positive_class: the clinically positive class of a binary task.
        decision_threshold: probability of the positive class from which a case is called
            positive (binary only).
        reference_predictions: predictions of the float32 model, for `agreement`.

    Returns:
        The metrics; AUROC is None when a split holds a single class.
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score

    n_classes = probs.shape[1]
    pred = predictions(probs, positive_class, decision_threshold)
    labels = list(range(n_classes))
    cm = confusion_matrix(y, pred, labels=labels)
    support = cm.sum(axis=1)
    recall = [float(cm[i, i] / support[i]) if support[i] else None for i in labels]
    auroc: float | None
    try:
        if n_classes == 2:
            auroc = float(roc_auc_score(y == positive_class, probs[:, positive_class]))
        else:
            auroc = float(roc_auc_score(y, probs, multi_class="ovr", average="macro",
                                        labels=labels))
    except ValueError:
        auroc = None
    values: dict[str, Any] = {
        "samples": int(len(y)),
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "auroc": auroc,
        "per_class_recall": recall,
        "confusion_matrix": cm.tolist(),
    }
    if n_classes == 2:
        values["positive_class"] = positive_class
        values["decision_threshold"] = decision_threshold
        values["sensitivity"] = recall[positive_class]
        values["specificity"] = recall[1 - positive_class]
    if reference_predictions is not None:
        values["agreement"] = float(np.mean(pred == reference_predictions))
    return Metrics(values, pred)
