"""Clinical metrics of a model variant from its outputs on a labelled split.

A clinician decides on sensitivity and specificity at an operating point, not on accuracy:
for a binary task the positive class (e.g. malignant) and the decision threshold on its
probability are explicit, and every variant (float32, pruned, int8, ...) is scored the same
way, with its agreement with the float32 model's predictions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import DataError
from pipeline.models import OutputKind


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


def probabilities(outputs: np.ndarray, kind: OutputKind) -> np.ndarray:
    """Class probabilities (N, C) from a model's raw outputs; C is 2 for one output unit.

    One unit: a sigmoid output is P(class 1); logits go through a sigmoid. Several units:
    softmax outputs are renormalised (dequantized int8 probabilities need not sum to 1);
    logits go through a softmax.
    """
    out = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if out.shape[1] == 1:
        p1 = np.clip(out[:, 0], 0.0, 1.0) if kind is OutputKind.SIGMOID else _sigmoid(out[:, 0])
        return np.stack([1.0 - p1, p1], axis=1)
    if kind is OutputKind.SOFTMAX:
        out = np.clip(out, 0.0, None)
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.divide(out, total, out=uniform, where=total > 0)
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


def _ratio(num: int, den: int) -> float | None:
    return float(num / den) if den else None


def _auroc(truth: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC of a binary truth, None when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if truth.all() or not truth.any():
        return None
    return float(roc_auc_score(truth, score))


def evaluate(
    probs: np.ndarray,
    y: np.ndarray,
    *,
    positive_class: int = 1,
    decision_threshold: float = 0.5,
    reference_predictions: np.ndarray | None = None,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> Metrics:
    """Accuracy, balanced accuracy, AUROC, per-class recall, confusion matrix, agreement;
    for a binary task also sensitivity, specificity, PPV, NPV at the threshold.

    Args:
        probs: class probabilities (N, C), e.g. from `probabilities()`.
        y: integer labels (N,) in [0, C).
        positive_class: the clinically positive class of a binary task.
        decision_threshold: probability of the positive class from which a case is called
            positive (binary only; multi-class predicts the argmax).
        reference_predictions: predictions of the float32 model, for `agreement`.
        class_names: names of the classes, for the report.

    Returns:
        The metrics. `confusion_matrix[i][j]` counts true class i predicted as j. AUROC is
        binary for two classes, else the macro average of one-vs-rest AUROCs over the
        classes present with both outcomes; None where undefined (a single class).

    Raises:
        DataError: labels that are not class indices of the model's outputs.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

    probs = np.asarray(probs, np.float64)
    y = np.asarray(y)
    if probs.ndim != 2 or len(probs) != len(y) or len(y) == 0:
        raise DataError(
            f"Evaluation needs one probability row per label; received probabilities of shape "
            f"{probs.shape} for {len(y)} labels."
        )
    n_classes = probs.shape[1]
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
        raise DataError(
            f"Labels must be class indices in [0, {n_classes - 1}] for a model with "
            f"{n_classes} classes; received values from {y.min()} to {y.max()}."
        )
    if n_classes == 2 and positive_class not in (0, 1):
        raise DataError(
            f"The positive class of a binary task is 0 or 1; received {positive_class}."
        )

    pred = predictions(probs, positive_class, decision_threshold)
    labels = list(range(n_classes))
    cm = confusion_matrix(y, pred, labels=labels)
    support = cm.sum(axis=1)
    recall = [_ratio(int(cm[i, i]), int(support[i])) for i in labels]
    with warnings.catch_warnings():  # a class predicted but absent from y is ignored
        warnings.simplefilter("ignore")
        balanced = float(balanced_accuracy_score(y, pred))

    values: dict[str, Any] = {
        "samples": int(len(y)),
        "num_classes": n_classes,
        "class_names": None if class_names is None else list(class_names),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": balanced,
    }
    if n_classes == 2:
        values["auroc"] = _auroc(y == positive_class, probs[:, positive_class])
        values["auroc_average"] = "binary"
    else:
        per_class = [_auroc(y == c, probs[:, c]) for c in labels]
        defined = [a for a in per_class if a is not None]
        values["auroc"] = float(np.mean(defined)) if defined else None
        values["auroc_average"] = "macro one-vs-rest"
        values["auroc_per_class"] = per_class
    values["per_class_recall"] = recall
    values["confusion_matrix"] = cm.tolist()
    values["label_counts"] = support.tolist()
    values["prediction_counts"] = cm.sum(axis=0).tolist()
    if n_classes == 2:
        neg = 1 - positive_class
        tp, fn = int(cm[positive_class, positive_class]), int(cm[positive_class, neg])
        fp, tn = int(cm[neg, positive_class]), int(cm[neg, neg])
        values.update(
            {
                "positive_class": positive_class,
                "positive_class_name": (
                    class_names[positive_class]
                    if class_names is not None and positive_class < len(class_names)
                    else None
                ),
                "decision_threshold": decision_threshold,
                "sensitivity": _ratio(tp, tp + fn),
                "specificity": _ratio(tn, tn + fp),
                "ppv": _ratio(tp, tp + fp),
                "npv": _ratio(tn, tn + fn),
                "tp": tp,
                "fn": fn,
                "fp": fp,
                "tn": tn,
            }
        )
    values["agreement"] = (
        None
        if reference_predictions is None
        else float(np.mean(pred == np.asarray(reference_predictions)))
    )
    return Metrics(values, pred)
