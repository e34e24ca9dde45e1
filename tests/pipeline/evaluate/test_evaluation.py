"""Clinical metrics against numbers worked out by hand on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import DataError
from pipeline.evaluate.metrics import evaluate, predictions, probabilities
from pipeline.models import OutputKind

# Binary: 4 negatives (class 0), 2 positives (class 1); P(class 1) per case.
Y_BIN = np.array([0, 0, 0, 0, 1, 1])
P1 = np.array([0.1, 0.2, 0.6, 0.3, 0.55, 0.9])
PROBS_BIN = np.stack([1 - P1, P1], axis=1)


def test_binary_metrics_by_hand() -> None:
    m = evaluate(PROBS_BIN, Y_BIN, positive_class=1, decision_threshold=0.5)
    # predictions at 0.5: [0, 0, 1, 0, 1, 1] -> TN 3, FP 1 (0.6), FN 0, TP 2
    assert m.predictions.tolist() == [0, 0, 1, 0, 1, 1]
    assert m["confusion_matrix"] == [[3, 1], [0, 2]]
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 0, 1, 3)
    assert m["sensitivity"] == pytest.approx(1.0)
    assert m["specificity"] == pytest.approx(0.75)
    assert m["ppv"] == pytest.approx(2 / 3)
    assert m["npv"] == pytest.approx(1.0)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["balanced_accuracy"] == pytest.approx(0.875)
    assert m["per_class_recall"] == pytest.approx([0.75, 1.0])
    # AUROC: 0.55 beats 3 of 4 negatives, 0.9 beats all 4 -> 7/8
    assert m["auroc"] == pytest.approx(0.875)
    assert m["label_counts"] == [4, 2]
    assert m["prediction_counts"] == [3, 3]
    assert m["decision_threshold"] == 0.5
    assert m["positive_class"] == 1
    assert m["agreement"] is None


def test_positive_class_zero_swaps_the_roles() -> None:
    """Class 0 positive (malignant in WDBC/BreastMNIST): P(0) = 1 - P(1) >= 0.5."""
    m = evaluate(
        PROBS_BIN,
        Y_BIN,
        positive_class=0,
        decision_threshold=0.5,
        class_names=("malignant", "benign"),
    )
    # same calls; now TP = true 0 called 0 = 3, FN = 1, FP = 0, TN = 2
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (3, 1, 0, 2)
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(1.0)
    assert m["ppv"] == pytest.approx(1.0)
    assert m["npv"] == pytest.approx(2 / 3)
    assert m["auroc"] == pytest.approx(0.875)
    assert m["positive_class_name"] == "malignant"


def test_decision_threshold_moves_the_operating_point() -> None:
    m = evaluate(PROBS_BIN, Y_BIN, positive_class=1, decision_threshold=0.25)
    # P(1) >= 0.25: [0, 0, 1, 1, 1, 1] -> TP 2, FN 0, FP 2, TN 2
    assert m["confusion_matrix"] == [[2, 2], [0, 2]]
    assert m["sensitivity"] == pytest.approx(1.0)
    assert m["specificity"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["auroc"] == pytest.approx(0.875)  # threshold-free


def test_threshold_is_inclusive() -> None:
    probs = np.array([[0.5, 0.5], [0.6, 0.4]])
    assert predictions(probs, 1, 0.5).tolist() == [1, 0]
    assert predictions(probs, 0, 0.5).tolist() == [0, 0]


def test_agreement_with_reference_predictions() -> None:
    m = evaluate(PROBS_BIN, Y_BIN, reference_predictions=np.array([0, 0, 1, 0, 1, 0]))
    assert m["agreement"] == pytest.approx(5 / 6)


# Multi-class: 3 classes, 2 cases each; rows are softmax probabilities.
Y_MULTI = np.array([0, 0, 1, 1, 2, 2])
PROBS_MULTI = np.array(
    [
        [0.7, 0.2, 0.1],  # -> 0
        [0.3, 0.4, 0.3],  # -> 1
        [0.2, 0.6, 0.2],  # -> 1
        [0.1, 0.2, 0.7],  # -> 2
        [0.1, 0.1, 0.8],  # -> 2
        [0.5, 0.2, 0.3],  # -> 0
    ]
)


def test_multiclass_metrics_by_hand() -> None:
    m = evaluate(PROBS_MULTI, Y_MULTI, class_names=["a", "b", "c"])
    assert m.predictions.tolist() == [0, 1, 1, 2, 2, 0]
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["per_class_recall"] == pytest.approx([0.5, 0.5, 0.5])
    # one-vs-rest: class 0 7/8; class 1 6/8 (two ties at 0.2); class 2 6.5/8 (a tie at 0.3)
    assert m["auroc_per_class"] == pytest.approx([0.875, 0.75, 0.8125])
    assert m["auroc"] == pytest.approx((0.875 + 0.75 + 0.8125) / 3)
    assert m["auroc_average"] == "macro one-vs-rest"
    assert "sensitivity" not in m.values  # binary only
    assert m["class_names"] == ["a", "b", "c"]


def test_multiclass_auroc_matches_sklearn_macro_ovr() -> None:
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(Y_MULTI, PROBS_MULTI, multi_class="ovr", average="macro")
    assert evaluate(PROBS_MULTI, Y_MULTI)["auroc"] == pytest.approx(expected)


def test_multiclass_auroc_skips_a_class_absent_from_the_split() -> None:
    m = evaluate(PROBS_MULTI[:4], Y_MULTI[:4])  # no class 2 cases
    assert m["auroc_per_class"][2] is None
    assert m["per_class_recall"][2] is None
    assert m["auroc"] == pytest.approx(np.mean(m["auroc_per_class"][:2]))


def test_single_class_split_has_no_auroc() -> None:
    m = evaluate(PROBS_BIN[:4], Y_BIN[:4])
    assert m["auroc"] is None
    assert m["sensitivity"] is None  # no positives
    assert m["specificity"] == pytest.approx(0.75)


def test_probabilities_of_a_sigmoid_unit() -> None:
    probs = probabilities(np.array([[0.2], [0.9]], np.float32), OutputKind.SIGMOID)
    np.testing.assert_allclose(probs, [[0.8, 0.2], [0.1, 0.9]], atol=1e-7)


def test_probabilities_of_one_logit() -> None:
    probs = probabilities(
        np.array([[0.0], [math.log(3.0)], [1000.0], [-1000.0]]), OutputKind.LOGITS
    )
    np.testing.assert_allclose(probs, [[0.5, 0.5], [0.25, 0.75], [0, 1], [1, 0]], atol=1e-12)


def test_probabilities_of_logits_per_class() -> None:
    probs = probabilities(np.array([[0.0, math.log(2.0), math.log(3.0)]]), OutputKind.LOGITS)
    np.testing.assert_allclose(probs, [[1 / 6, 2 / 6, 3 / 6]], atol=1e-12)


def test_dequantized_softmax_is_renormalised() -> None:
    """An int8 softmax output (steps of 1/256) need not sum to 1; AUROC must still work."""
    outputs = np.round(PROBS_MULTI * 256) / 256 - 1 / 256
    probs = probabilities(outputs, OutputKind.SOFTMAX)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert evaluate(probs, Y_MULTI)["auroc"] is not None


def test_softmax_two_units_is_binary() -> None:
    probs = probabilities(PROBS_BIN, OutputKind.SOFTMAX)
    m = evaluate(probs, Y_BIN, positive_class=1)
    assert m["sensitivity"] == pytest.approx(1.0)
    assert m["specificity"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (PROBS_BIN, np.array([0, 0, 0, 0, 1, 2]), "class indices in \\[0, 1\\]"),
        (PROBS_BIN, np.array([0, 0, 0, 0, 1, -1]), "class indices"),
        (PROBS_BIN, Y_BIN.astype(float), "class indices"),
        (PROBS_BIN, Y_BIN[:5], "one probability row per label"),
    ],
)
def test_bad_labels_are_data_errors(probs: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        evaluate(probs, labels)
