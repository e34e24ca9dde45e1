"""`--sparsity auto`: the search for the largest sparsity the validation data accepts.

Each sparsity of a grid prunes a fresh copy of the original weights (after the configured
fine-tuning); the largest whose validation AUROC stays within `max_prune_drop` of the
original model's and, given the operating point's `rates`, whose validation sensitivity and
specificity stay within their budgets of the original's is kept; when none does, the model
ships unpruned. With a paired judge (`pipeline.evaluate.decision`, built by the prune stage)
"within" is decided by `--decide`: by default the upper confidence bound of each loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import PruneConfig
from pipeline.config.budget import ValidationBudget, budget_json
from pipeline.evaluate.decision import Decision, ModelJudge
from pipeline.evaluate.operating_point import RateBudget
from pipeline.prune.magnitude import PrunableWeight, layer_stats, overall_sparsity
from pipeline.prune.trial import Score, Trial, run_trial

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind

# validation {"sensitivity", "specificity"} of a model at the operating point
Rates = Callable[["keras.Model"], "dict[str, float | None]"]


@dataclass(frozen=True)
class AutoSearch:
    """The `--sparsity auto` curve and its decision."""

    grid: tuple[float, ...]
    max_prune_drop: float
    baseline_val_auroc: float | None
    curve: tuple[dict[str, Any], ...]
    chosen_sparsity: float | None  # threshold: 0.0 when none; structured: None when none
    reason: str
    rates: RateBudget | None = None  # None: rates not judged (no operating point)
    paired: ModelJudge | None = None  # None: decided on point estimates without bounds

    def min_detectable(self) -> dict[str, float | None] | None:
        return self.paired.min_detectable() if self.paired else None

    def to_json(self) -> dict[str, Any]:
        rates, paired = self.rates, self.paired
        decided = {}
        if paired is not None:
            rule = paired.paired.rule
            decided = {
                "decide": rule.decide.value,
                "decision_confidence": rule.confidence,
                "min_detectable": self.min_detectable(),
            }
        return {
            "grid": list(self.grid),
            **budget_json(
                ("max_prune_drop", self.max_prune_drop),
                self.baseline_val_auroc,
                rates.budget if rates else None,
                rates.reference if rates else None,
                prefix="baseline",
            ),
            "curve": list(self.curve),
            "chosen_sparsity": self.chosen_sparsity,
            "reason": self.reason,
            **decided,
        }


@dataclass(frozen=True)
class RateJudge:
    """Validation rates of a model at the operating point against the original's."""

    rates: Rates
    budget: RateBudget

    @classmethod
    def of_original(cls, model: keras.Model, rates: Rates, budget: ValidationBudget) -> RateJudge:
        """A judge whose budgets are counted from the rates of `model` as it is now."""
        return cls(rates, RateBudget(budget, rates(model)))

    def judge(self, model: keras.Model) -> tuple[dict[str, float | None], bool]:
        now = self.rates(model)
        return now, self.budget.meets(now)


def within_budget(
    model: keras.Model,
    auroc: float | None,
    baseline: float,
    max_prune_drop: float,
    rates: RateJudge | None,
    paired: ModelJudge | None = None,
) -> tuple[dict[str, float | None], bool, Decision | None]:
    """Whether a pruned `model` of validation AUROC `auroc` is within the auto budgets: the
    AUROC within `max_prune_drop` of `baseline` and, with `rates`, its validation rates
    within theirs; returns (those rates, {} without a judge; the verdict; the paired
    decision). With `paired`, it alone judges every budget (`--decide`)."""
    if paired is not None:
        decision = paired.judge(model)
        return decision.rates(), decision.within_budget, decision
    # a tiny slack so that "no drop at all" passes a zero budget despite float noise
    auroc_ok = auroc is not None and auroc >= baseline - max_prune_drop - 1e-12
    val_rates, rates_ok = rates.judge(model) if rates else ({}, True)
    return val_rates, auroc_ok and rates_ok, None


def _point(
    trial: Trial,
    weights: Sequence[PrunableWeight],
    val_rates: dict[str, float | None],
    ok: bool,
    decision: Decision | None,
) -> dict[str, Any]:
    """One point of the auto curve."""
    return {
        "sparsity": trial.sparsity,
        "achieved_sparsity": overall_sparsity(layer_stats(weights, trial.result, False)),
        "val_auroc_pruned": trial.val_auroc_pruned,
        "val_auroc_finetuned": trial.val_auroc_finetuned,
        "val_auroc": trial.val_auroc,
        **{f"val_{k}": v for k, v in val_rates.items()},
        "within_budget": ok,
        **decision_json(decision),
    }


def decision_json(decision: Decision | None) -> dict[str, Any]:
    """A curve point's `val_loss_bound` and the budgets it `missed` ({} without bounds)."""
    if decision is None:
        return {}
    return {**decision.to_json(), "missed": list(decision.missed.values())}


def _try_grid(
    model: keras.Model,
    weights: Sequence[PrunableWeight],
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    baseline: float,
    score: Score,
    seed: int,
    rates: RateJudge | None,
    paired: ModelJudge | None,
) -> tuple[list[dict[str, Any]], tuple[Trial, list[np.ndarray]] | None]:
    """The curve over the grid, and the best trial within budget with its weights."""
    original = model.get_weights()
    curve = []
    best: tuple[Trial, list[np.ndarray]] | None = None
    for sparsity in config.auto_grid:
        model.set_weights(original)
        trial = run_trial(model, weights, splits, kind, config, sparsity, score=score, seed=seed)
        val_rates, ok, decision = within_budget(
            model, trial.val_auroc, baseline, config.max_prune_drop, rates, paired
        )
        curve.append(_point(trial, weights, val_rates, ok, decision))
        if ok and (best is None or sparsity > (best[0].sparsity or 0.0)):
            best = (trial, model.get_weights())
    if best is None:
        model.set_weights(original)
    return curve, best


def search_sparsity(
    model: keras.Model,
    weights: Sequence[PrunableWeight],
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    baseline: float | None,
    score: Score,
    seed: int,
    rates: RateJudge | None = None,
    paired: ModelJudge | None = None,
) -> tuple[Trial | None, AutoSearch]:
    """The auto search: prunes `model` in place at the chosen sparsity (or leaves it as it
    was when none is chosen) and returns the chosen trial and the search; `paired` (its
    reference: `model` as it is now) decides by `--decide` instead of `rates`."""
    grid, budget, fields = config.auto_grid, config.max_prune_drop, judge_fields(rates, paired)
    if baseline is None:
        reason = (
            "validation AUROC of the original model is undefined (the validation split "
            "holds a single class), so auto cannot judge pruning; the model ships "
            "unpruned. Pass --sparsity S to prune anyway."
        )
        return None, AutoSearch(grid, budget, None, (), 0.0, reason, **fields)
    curve, best = _try_grid(
        model, weights, splits, kind, config, baseline, score, seed, rates, paired
    )
    if best is None:
        tried = ", ".join(f"{p['sparsity']:g} -> {point_text(p)}" for p in curve)
        reason = (
            f"no sparsity of the grid kept validation AUROC within --max-prune-drop "
            f"{budget:g} of the original {baseline:.4f}{rates_text(rates, paired)}"
            f"{by_bounds(paired)} ({tried}); the "
            "model ships unpruned. Raise --max-prune-drop, add --finetune-epochs, or pass "
            "--sparsity S explicitly."
        )
        return None, AutoSearch(grid, budget, baseline, tuple(curve), 0.0, reason, **fields)
    trial, chosen_weights = best
    model.set_weights(chosen_weights)
    reason = (
        f"largest grid sparsity whose validation AUROC {auroc_text(trial.val_auroc)} "
        f"stays within {budget:g} of the original {baseline:.4f}{rates_text(rates, paired)}"
        f"{by_bounds(paired)}"
    )
    chosen = float(trial.sparsity or 0.0)
    return trial, AutoSearch(grid, budget, baseline, tuple(curve), chosen, reason, **fields)


def auroc_text(value: float | None) -> str:
    """An AUROC for a reason's text."""
    return "undefined" if value is None else f"{value:.4f}"


def point_text(point: dict[str, Any]) -> str:
    """A curve point's validation AUROC (and rates, and the budgets it missed) for a
    reason's text."""
    text = auroc_text(point["val_auroc"])
    if point.get("val_sensitivity") is not None:
        text += f" (sensitivity {point['val_sensitivity']:.3f}"
        text += f", specificity {auroc_text(point.get('val_specificity'))[:5]})"
    if point.get("missed"):
        text += ": " + "; ".join(point["missed"])
    return text


def judge_fields(rates: RateJudge | None, paired: ModelJudge | None = None) -> dict[str, Any]:
    """`AutoSearch`'s rate budget and paired judge ({} without them)."""
    fields: dict[str, Any] = {"rates": rates.budget} if rates else {}
    if paired is not None:
        fields["paired"] = paired
        ref, limits = paired.paired.reference_point, paired.paired.limits
        if "sensitivity" in limits and not rates:
            budget = ValidationBudget(*(limits[n] for n in ("sensitivity", "specificity", "brier")))
            fields["rates"] = RateBudget(budget, ref, paired.paired.threshold or 0.5)
    return fields


def rates_text(rates: RateJudge | None, paired: ModelJudge | None = None) -> str:
    """The rate budgets for a reason's text ("" without a judge)."""
    if rates:
        return rates.budget.text()
    fields = judge_fields(None, paired)
    return fields["rates"].text() if "rates" in fields else ""


def by_bounds(paired: ModelJudge | None) -> str:
    """How the budgets were judged, for a reason's text."""
    if paired is None or paired.paired.rule.decide.value == "point":
        return ""
    return f" by the {paired.paired.rule.confidence:.0%} upper confidence bounds of the losses"
