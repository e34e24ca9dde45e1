"""The threshold-pruning step, `prune_model`, and its outcome: the report's `pruning`
section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.config import AUTO_SPARSITY, PruneConfig, PruneSchedule, PruneScope
from pipeline.config.budget import ValidationBudget
from pipeline.errors import ModelError
from pipeline.prune.auto import AutoSearch, RateJudge, Rates, search_sparsity
from pipeline.prune.finetune import Finetuning
from pipeline.prune.magnitude import LayerPruning, layer_stats, overall_sparsity, select_weights
from pipeline.prune.trial import Score, Trial, run_trial

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.evaluate.decision import ModelJudge
    from pipeline.models import OutputKind


def _finetune_json(config: PruneConfig, tuning: Finetuning) -> dict[str, Any]:
    """The report's `pruning.finetune` section."""
    polynomial = config.schedule is PruneSchedule.POLYNOMIAL
    return {
        "epochs": tuning.epochs,
        "steps": tuning.steps,
        "batch_size": tuning.batch_size,
        "schedule": config.schedule.value,
        "initial_sparsity": config.initial_sparsity if polynomial else None,
        "prune_frequency": config.prune_frequency if polynomial else None,
        "mask_updates": list(tuning.mask_updates),
        "history": tuning.history,
    }


@dataclass(frozen=True)
class PruningOutcome:
    """The pruning stage's result: the model as it ships, and how it got there."""

    config: PruneConfig
    layers: tuple[LayerPruning, ...]
    trial: Trial | None  # None: nothing was pruned
    original_val_auroc: float | None
    auto: AutoSearch | None = None
    note: str | None = None

    @property
    def target_sparsity(self) -> float | None:
        if self.trial is None:
            return 0.0
        return self.trial.sparsity

    @property
    def achieved_sparsity(self) -> float:
        return overall_sparsity(self.layers)

    @property
    def val_auroc_pruned(self) -> float | None:
        """Validation AUROC right after pruning (the original's when nothing was pruned)."""
        return self.trial.val_auroc_pruned if self.trial else self.original_val_auroc

    @property
    def val_auroc(self) -> float | None:
        """Validation AUROC of the model as it ships: fine-tuned if fine-tuned."""
        return self.trial.val_auroc if self.trial else self.original_val_auroc

    def _threshold(self) -> float | None:
        if self.trial is not None:
            return self.trial.result.threshold
        return None if self.config.scope is PruneScope.LAYER else 0.0

    def _mode(self) -> str:
        cfg = self.config
        return "threshold" if cfg.threshold is not None else AUTO_SPARSITY if cfg.auto else "fixed"

    def to_json(self) -> dict[str, Any]:
        """The report's `pruning` section."""
        trial, cfg = self.trial, self.config
        tuning = trial.finetuning if trial else None
        formula = "w' = w * 1{|w| >= threshold}"
        if cfg.prune_biases:
            formula += "; b' = b * 1{|b| >= threshold}"
        return {
            "method": "magnitude_threshold",
            "formula": formula,
            "sparsity_mode": self._mode(),
            "scope": cfg.scope.value,
            "schedule": cfg.schedule.value,
            "threshold": self._threshold(),
            "thresholds": {layer.name: layer.threshold for layer in self.layers},
            "target_sparsity": self.target_sparsity,
            "achieved_sparsity": self.achieved_sparsity,
            "achieved_sparsity_before_finetune": (
                trial.sparsity_before_finetune if trial else self.achieved_sparsity
            ),
            "achieved_sparsity_after_finetune": self.achieved_sparsity,
            "biases_pruned": cfg.prune_biases and trial is not None,
            "include": list(cfg.include),
            "exclude": list(cfg.exclude),
            "keep_first_last_dense": cfg.keep_first_last_dense,
            "finetune_epochs": cfg.finetune_epochs if tuning else 0,
            "finetune": None if tuning is None else _finetune_json(cfg, tuning),
            "validation_auroc": {
                "original": self.original_val_auroc,
                "pruned": self.val_auroc_pruned,
                "finetuned": trial.val_auroc_finetuned if trial else None,
            },
            "auto": self.auto.to_json() if self.auto else None,
            "note": self.note,
            "layers": [layer.to_json() for layer in self.layers],
        }


def prune_model(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    *,
    score: Score,
    seed: int = 0,
    rates: Rates | None = None,
    budget: ValidationBudget | None = None,
    paired: Callable[[keras.Model], ModelJudge] | None = None,
) -> PruningOutcome:
    """The pruning stage: prune (searching the sparsity if auto) and fine-tune, in place.

    Args:
        model: the model; pruned and fine-tuned in place.
        splits: train split for fine-tuning, val split for validation and the auto search.
        kind: the model's output kind.
        config: the pruning configuration.
        score: validation AUROC of a model (None when undefined).
        seed: seed of fine-tuning.
        rates: validation sensitivity, specificity and Brier score of a model at the
            operating point; with `budget`, auto then also keeps them within their
            budgets of the original model's.
        budget: the validation rate budgets (None: auto judges the AUROC alone).
        paired: the paired judge of a reference model (`--decide`); with it auto judges
            every budget by it against `model` as it is now, instead of `rates`.

    Raises:
        ModelError: no prunable layer (unless the sparsity is 0).
        ConfigError: a layer pattern matches nothing or the selection is empty.
    """
    original_auroc = score(model)
    if config.target_sparsity == 0:
        try:
            weights = select_weights(model, config)
        except ModelError:
            weights = []
        note = "--sparsity 0: threshold pruning skipped."
        return PruningOutcome(
            config, layer_stats(weights, None, False), None, original_auroc, note=note
        )
    weights = select_weights(model, config)
    if not config.auto:
        sparsity = None
        if isinstance(config.target_sparsity, (int, float)):  # else a threshold
            sparsity = float(config.target_sparsity)
        fixed = run_trial(model, weights, splits, kind, config, sparsity, score=score, seed=seed)
        layers = layer_stats(weights, fixed.result, config.prune_biases)
        return PruningOutcome(config, layers, fixed, original_auroc)
    judge = None
    if rates is not None and budget is not None:
        judge = RateJudge.of_original(model, rates, budget)
    trial, search = search_sparsity(
        model, weights, splits, kind, config, original_auroc, score, seed, judge,
        paired(model) if paired and original_auroc is not None else None,
    )  # fmt: skip
    if trial is None:
        layers = layer_stats(weights, None, False)
        return PruningOutcome(config, layers, None, original_auroc, search, note=search.reason)
    layers = layer_stats(weights, trial.result, config.prune_biases)
    return PruningOutcome(config, layers, trial, original_auroc, search)
