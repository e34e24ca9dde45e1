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

    probs, y = _checked(probs, y, positive_class)
    n_classes = probs.shape[1]
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
    values.update(_auroc_values(probs, y, positive_class))
    values["per_class_recall"] = recall
    values["confusion_matrix"] = cm.tolist()
    values["label_counts"] = support.tolist()
    values["prediction_counts"] = cm.sum(axis=0).tolist()
    if n_classes == 2:
        values.update(_binary_rates(cm, positive_class, decision_threshold, class_names))
    values["agreement"] = (
        None
        if reference_predictions is None
        else float(np.mean(pred == np.asarray(reference_predictions)))
    )
    return Metrics(values, pred)


def _checked(probs: Any, y: Any, positive_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities and labels as arrays, checked against each other.

    Raises:
        DataError: shapes that do not match, or labels that are not class indices.
    """
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
    return probs, y


def _auroc_values(probs: np.ndarray, y: np.ndarray, positive_class: int) -> dict[str, Any]:
    """Binary AUROC of the positive class, else the macro one-vs-rest average."""
    values: dict[str, Any] = {}
    n_classes = probs.shape[1]
    labels = list(range(n_classes))
    if n_classes == 2:
        values["auroc"] = _auroc(y == positive_class, probs[:, positive_class])
        values["auroc_average"] = "binary"
    else:
        per_class = [_auroc(y == c, probs[:, c]) for c in labels]
        defined = [a for a in per_class if a is not None]
        values["auroc"] = float(np.mean(defined)) if defined else None
        values["auroc_average"] = "macro one-vs-rest"
        values["auroc_per_class"] = per_class
    return values


def _binary_rates(
    cm: np.ndarray,
    positive_class: int,
    decision_threshold: float,
    class_names: tuple[str, ...] | list[str] | None,
) -> dict[str, Any]:
    """Sensitivity, specificity, PPV, NPV and the four counts at the threshold."""
    neg = 1 - positive_class
    tp, fn = int(cm[positive_class, positive_class]), int(cm[positive_class, neg])
    fp, tn = int(cm[neg, positive_class]), int(cm[neg, neg])
    return {
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


FLIP_KINDS = ("positive_missed", "positive_found", "negative_flagged", "negative_cleared")


def flips(
    y: np.ndarray,
    reference_probs: np.ndarray,
    probs: np.ndarray,
    positive_class: int,
    threshold: float,
) -> dict[str, Any]:
    """Which test cases a variant decides differently from float32 (binary task).

    `positive_missed`: positive cases float32 flags and the variant does not;
    `positive_found`: the reverse; `negative_flagged`: negative cases only the variant
    flags; `negative_cleared`: the reverse. They add up to (1 - agreement) x n. `cases`
    lists each changed case (missed positives first) with both positive-class
    probabilities.
    """
    y = np.asarray(y)
    ref_p = np.asarray(reference_probs, np.float64)[:, positive_class]
    var_p = np.asarray(probs, np.float64)[:, positive_class]
    positive = y == positive_class
    ref_flag, var_flag = ref_p >= threshold, var_p >= threshold
    masks = {
        "positive_missed": positive & ref_flag & ~var_flag,
        "positive_found": positive & ~ref_flag & var_flag,
        "negative_flagged": ~positive & ~ref_flag & var_flag,
        "negative_cleared": ~positive & ref_flag & ~var_flag,
    }
    doc: dict[str, Any] = {kind: int(mask.sum()) for kind, mask in masks.items()}
    doc["cases"] = [
        {
            "index": int(i),
            "label": int(y[i]),
            "float32": float(ref_p[i]),
            "variant": float(var_p[i]),
            "flip": kind,
        }
        for kind, mask in masks.items()
        for i in np.flatnonzero(mask)
    ]
    return doc


CALIBRATION_BINS = 15


def calibration(
    probs: np.ndarray, y: np.ndarray, positive_class: int = 1, bins: int = CALIBRATION_BINS
) -> dict[str, Any]:
    """Expected calibration error (equal-width bins), Brier score and the reliability curve.

    Binary: of the positive class's probability against the positive label. Multi-class:
    ECE of the top-label confidence against correctness, Brier summed over the classes.
    """
    from sklearn.metrics import brier_score_loss

    probs, y = np.asarray(probs, np.float64), np.asarray(y)
    if probs.shape[1] == 2:
        score = probs[:, positive_class]
        truth = (y == positive_class).astype(np.float64)
        brier = float(brier_score_loss(truth, score))
        basis = "positive-class probability"
    else:
        score = probs.max(axis=1)
        truth = (probs.argmax(axis=1) == y).astype(np.float64)
        onehot = np.eye(probs.shape[1])[y]
        brier = float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))
        basis = "top-label confidence"
    which = np.clip((score * bins).astype(int), 0, bins - 1)  # p = 1 joins the last bin
    count = np.bincount(which, minlength=bins)
    filled = count > 0
    mean_p = np.bincount(which, score, bins)[filled] / count[filled]
    observed = np.bincount(which, truth, bins)[filled] / count[filled]
    ece = float(np.sum(count[filled] / len(score) * np.abs(mean_p - observed)))
    return {
        "ece": ece,
        "brier": brier,
        "bins": bins,
        "basis": basis,
        "reliability": {
            "mean_predicted": mean_p.tolist(),
            "observed": observed.tolist(),
            "count": count[filled].tolist(),
        },
    }
