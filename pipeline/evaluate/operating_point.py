"""The operating point: the decision threshold on P(positive), chosen once on validation.

`threshold=T` fixes it; `sensitivity=S` takes the highest threshold whose validation
sensitivity is >= S, `specificity=S` the lowest whose validation specificity is >= S, and
`youden` the one maximising sensitivity + specificity - 1, all from the float32 model's
validation probabilities. Every variant is then judged at that one threshold on the test
split, so a pruned or int8 model is never re-tuned to look better.

A chosen threshold lies halfway between the validation score that sets it and the next
lower one: the validation decisions are those of the rule, and the ~1e-6 differences between
Keras and the TFLite runtimes cannot flip a validation case that sits exactly on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.config.budget import ValidationBudget


def choose_threshold(truth: np.ndarray, score: np.ndarray, rule: tuple[str, float | None]) -> float:
    """The decision threshold `rule` picks on (truth, positive-class score).

    Args:
        truth: bool (n,), True for the positive cases (both classes must be present).
        score: (n,) probability of the positive class.
        rule: (name, value) from `config.parse_operating_point`.
    """
    from sklearn.metrics import roc_curve

    name, value = rule
    if name == "threshold":
        return float(value)  # type: ignore[arg-type]
    fpr, tpr, thresholds = roc_curve(truth, score, drop_intermediate=False)
    eps = 1e-12
    if name == "sensitivity":
        i = int(np.flatnonzero(tpr >= float(value) - eps)[0])  # type: ignore[arg-type]
    elif name == "specificity":
        i = int(np.flatnonzero(1.0 - fpr >= float(value) - eps)[-1])  # type: ignore[arg-type]
    else:
        i = int(np.argmax(tpr - fpr))  # the first maximum: the highest such threshold
    upper = float(min(thresholds[i], 1.0))
    lower = float(thresholds[i + 1]) if i + 1 < len(thresholds) else 0.0
    return (upper + lower) / 2.0


def rates(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Sensitivity and specificity at `threshold` (None for an absent class), and the Brier
    score of the positive-class probability."""
    truth, score = np.asarray(truth, bool), np.asarray(score, np.float64)
    flagged = score >= threshold
    pos, neg = int(truth.sum()), int((~truth).sum())
    return {
        "sensitivity": float((flagged & truth).sum() / pos) if pos else None,
        "specificity": float((~flagged & ~truth).sum() / neg) if neg else None,
        "brier": float(np.mean((score - truth) ** 2)) if len(truth) else None,
    }


def describe(rule_text: str, threshold: float, validation: dict[str, Any]) -> dict[str, Any]:
    """The report's `operating_point` block."""
    return {
        "rule": rule_text,
        "threshold": float(threshold),
        "chosen_on": "validation",
        "validation": validation,
    }


RATES = ("sensitivity", "specificity")


@dataclass(frozen=True)
class RateBudget:
    """What a variant must keep on validation at the operating point: sensitivity and
    specificity (may drop by at most their budgets) and the Brier score (may rise by at most
    its budget), against a reference model's.

    A threshold chosen on float32 stays meaningful only while a variant's probabilities
    stay where float32's were: a pruned model can keep its AUROC (the ranking) while its
    probabilities drift, and then call almost every case positive (or negative) at that
    threshold. With ~40 validation positives, sensitivity moves in steps of 0.025; the
    Brier score sees the drift before it crosses the threshold.
    """

    budget: ValidationBudget
    reference: Mapping[str, float | None]  # the reference model's validation `rates()`
    threshold: float = 0.5
    groups: Any = None  # a `GroupBudget`: every judged --subgroup must keep its budgets too

    def _limits(self) -> dict[str, tuple[float, int]]:
        """name -> (budget, sign): sign +1 for a rate that must not fall, -1 must not rise."""
        return {
            name: (limit, -1 if name == "brier" else 1)
            for name, limit in self.budget.rate_limits().items()
        }

    def drops(self, now: Mapping[str, float | None]) -> dict[str, float | None]:
        """How much worse than the reference, per figure (None where undefined)."""
        out = {}
        for name, (_, sign) in self._limits().items():
            base, got = self.reference.get(name), now.get(name)
            out[name] = None if base is None or got is None else sign * (base - got)
        return out

    def meets(self, now: Mapping[str, Any]) -> bool:
        if now.get("groups_within_budget") is False:  # the worst judged subgroup decides
            return False
        drops = self.drops(now)
        for name, (limit, _) in self._limits().items():
            if self.reference.get(name) is None:
                continue
            worse = drops[name]
            if worse is None or worse > limit + 1e-12:
                return False
        return True

    def text(self) -> str:
        """`and validation sensitivity within ... at the operating point`, for reasons."""
        flags = {"sensitivity": "drop", "specificity": "drop", "brier": "increase"}
        parts = [
            f"{'Brier score' if name == 'brier' else name} within --val-max-{name}-"
            f"{flags[name]} {limit:g} of its {self.reference[name]:.3f}"
            for name, (limit, _) in self._limits().items()
            if self.reference.get(name) is not None
        ]
        return f" and validation {', '.join(parts)} at the operating point" if parts else ""
