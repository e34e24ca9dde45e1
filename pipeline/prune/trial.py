"""One threshold-pruning trial: prune at one target, then fine-tune with the masks held."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.config import PruneConfig, PruneSchedule
from pipeline.prune.finetune import FinetuneRecipe, Finetuning, finetune
from pipeline.prune.magnitude import (
    PrunableWeight,
    PruningResult,
    apply_masks,
    compute_masks,
    layer_stats,
    overall_sparsity,
)
from pipeline.prune.schedule import HeldMasks, PolynomialSchedule

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind

Score = Callable[["keras.Model"], "float | None"]


@dataclass(frozen=True)
class Trial:
    """One prune (+ fine-tune) run at one target."""

    sparsity: float | None  # target S; None with an absolute threshold
    result: PruningResult  # the final masks
    sparsity_before_finetune: float
    val_auroc_pruned: float | None
    finetuning: Finetuning | None
    val_auroc_finetuned: float | None

    @property
    def val_auroc(self) -> float | None:
        """Validation AUROC of the model this trial ships."""
        return self.val_auroc_finetuned if self.finetuning else self.val_auroc_pruned


def _schedule(
    config: PruneConfig, recipe: FinetuneRecipe, sparsity: float | None, samples: int
) -> PolynomialSchedule | None:
    """The polynomial schedule up to `sparsity` over the fine-tuning steps, if configured."""
    if config.schedule is not PruneSchedule.POLYNOMIAL:
        return None
    assert sparsity is not None  # PruneConfig rejects a threshold with this schedule
    return PolynomialSchedule.for_training(
        config.initial_sparsity, sparsity, recipe.total_steps(samples), config.prune_frequency
    )


def run_trial(
    model: keras.Model,
    weights: Sequence[PrunableWeight],
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    sparsity: float | None,
    *,
    score: Score,
    seed: int = 0,
) -> Trial:
    """Prunes `model` in place at `sparsity` (or the config's threshold) and fine-tunes it."""
    recipe = FinetuneRecipe.for_threshold(config)
    schedule = _schedule(config, recipe, sparsity, len(splits.y_train))
    start = schedule.sparsity_at(0) if schedule is not None else sparsity
    result = compute_masks(
        weights,
        sparsity=start,
        threshold=config.threshold if start is None else None,
        scope=config.scope,
        prune_biases=config.prune_biases,
    )
    apply_masks(weights, result.masks)
    before = overall_sparsity(layer_stats(weights, result, False))
    auroc_pruned = score(model)
    tuning = auroc_tuned = None
    if recipe.epochs > 0:
        masks = HeldMasks.for_config(weights, result, config, schedule)
        tuning = finetune(model, splits, kind, recipe, masks=masks, seed=seed)
        result = tuning.result or result
        auroc_tuned = score(model)
    return Trial(sparsity, result, before, auroc_pruned, tuning, auroc_tuned)
