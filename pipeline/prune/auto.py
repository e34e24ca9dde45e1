"""`--sparsity auto`: the search for the largest sparsity the validation data accepts.

Each sparsity of a grid prunes a fresh copy of the original weights (after the configured
fine-tuning); the largest whose validation AUROC stays within `max_prune_drop` of the
original model's and, given the operating point's `rates`, whose validation sensitivity and
specificity stay within their budgets of the original's is kept; when none does, the model
ships unpruned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import PruneConfig
from pipeline.config.budget import ValidationBudget, budget_json
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

    def to_json(self) -> dict[str, Any]:
        rates = self.rates
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
) -> tuple[dict[str, float | None], bool]:
    """Whether a pruned `model` of validation AUROC `auroc` is within the auto budgets: the
    AUROC within `max_prune_drop` of `baseline` and, with `rates`, its validation rates
    within theirs; returns (those rates, {} without a judge; the verdict)."""
    # a tiny slack so that "no drop at all" passes a zero budget despite float noise
    auroc_ok = auroc is not None and auroc >= baseline - max_prune_drop - 1e-12
    val_rates, rates_ok = rates.judge(model) if rates else ({}, True)
    return val_rates, auroc_ok and rates_ok


def _point(
    trial: Trial,
    weights: Sequence[PrunableWeight],
    val_rates: dict[str, float | None],
    ok: bool,
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
    }


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
) -> tuple[list[dict[str, Any]], tuple[Trial, list[np.ndarray]] | None]:
    """The curve over the grid, and the best trial within budget with its weights."""
    original = model.get_weights()
    curve = []
    best: tuple[Trial, list[np.ndarray]] | None = None
    for sparsity in config.auto_grid:
        model.set_weights(original)
        trial = run_trial(model, weights, splits, kind, config, sparsity, score=score, seed=seed)
        val_rates, ok = within_budget(
            model, trial.val_auroc, baseline, config.max_prune_drop, rates
        )
        curve.append(_point(trial, weights, val_rates, ok))
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
) -> tuple[Trial | None, AutoSearch]:
    """The auto search: prunes `model` in place at the chosen sparsity (or leaves it as it
    was when none is chosen) and returns the chosen trial and the search."""
    grid, budget, fields = config.auto_grid, config.max_prune_drop, judge_fields(rates)
    if baseline is None:
        reason = (
            "validation AUROC of the original model is undefined (the validation split "
            "holds a single class), so auto cannot judge pruning; the model ships "
            "unpruned. Pass --sparsity S to prune anyway."
        )
        return None, AutoSearch(grid, budget, None, (), 0.0, reason, **fields)
    curve, best = _try_grid(model, weights, splits, kind, config, baseline, score, seed, rates)
    if best is None:
        tried = ", ".join(f"{p['sparsity']:g} -> {point_text(p)}" for p in curve)
        reason = (
            f"no sparsity of the grid kept validation AUROC within --max-prune-drop "
            f"{budget:g} of the original {baseline:.4f}{rates_text(rates)} ({tried}); the "
            "model ships unpruned. Raise --max-prune-drop, add --finetune-epochs, or pass "
            "--sparsity S explicitly."
        )
        return None, AutoSearch(grid, budget, baseline, tuple(curve), 0.0, reason, **fields)
    trial, chosen_weights = best
    model.set_weights(chosen_weights)
    reason = (
        f"largest grid sparsity whose validation AUROC {auroc_text(trial.val_auroc)} "
        f"stays within {budget:g} of the original {baseline:.4f}{rates_text(rates)}"
    )
    chosen = float(trial.sparsity or 0.0)
    return trial, AutoSearch(grid, budget, baseline, tuple(curve), chosen, reason, **fields)


def auroc_text(value: float | None) -> str:
    """An AUROC for a reason's text."""
    return "undefined" if value is None else f"{value:.4f}"


def point_text(point: dict[str, Any]) -> str:
    """A curve point's validation AUROC (and rates) for a reason's text."""
    text = auroc_text(point["val_auroc"])
    if point.get("val_sensitivity") is not None:
        text += f" (sensitivity {point['val_sensitivity']:.3f}"
        text += f", specificity {auroc_text(point.get('val_specificity'))[:5]})"
    return text


def judge_fields(rates: RateJudge | None) -> dict[str, Any]:
    """`AutoSearch`'s rate budget of a judge ({} without one)."""
    return {"rates": rates.budget} if rates else {}


def rates_text(rates: RateJudge | None) -> str:
    """The rate budgets for a reason's text ("" without a judge)."""
    return rates.budget.text() if rates else ""
