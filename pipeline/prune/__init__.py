"""The prune stage: magnitude (threshold) pruning with fine-tuning, structured channel and
block removal, nested-model flattening, and the MAC count.

Threshold pruning's modules, in the order the step uses them: `magnitude` (prunable
kernels, thresholds, masks, measures), `schedule` (masks held through fine-tuning, the
polynomial schedule), `finetune` (`FinetuneRecipe` and `finetune`), `trial` (prune at one
target, fine-tune), `auto` (the `--sparsity auto` search) and `outcome` (`prune_model` and
its report). Structured pruning is the `structured` package; `stage` is the build's stage.

Threshold pruning's public names are re-exported here.
"""

from pipeline.prune.auto import AutoSearch, RateJudge, Rates, search_sparsity
from pipeline.prune.finetune import (
    FINETUNE_BATCH_SIZE,
    FinetuneRecipe,
    Finetuning,
    augmenter,
    check_augmentable,
    finetune,
    finetune_loss,
    finetune_optimizer,
    teacher_targets,
)
from pipeline.prune.magnitude import (
    PRUNABLE_LAYERS,
    LayerPruning,
    PrunableWeight,
    PruningResult,
    apply_masks,
    compute_masks,
    layer_stats,
    measure_sparsity,
    overall_sparsity,
    prunable_weights,
    prune,
    select_weights,
    threshold_for_sparsity,
)
from pipeline.prune.outcome import PruningOutcome, prune_model
from pipeline.prune.schedule import HeldMasks, PolynomialSchedule, mask_keeper
from pipeline.prune.trial import Score, Trial, run_trial

__all__ = [
    "FINETUNE_BATCH_SIZE",
    "PRUNABLE_LAYERS",
    "AutoSearch",
    "FinetuneRecipe",
    "Finetuning",
    "HeldMasks",
    "LayerPruning",
    "PolynomialSchedule",
    "PrunableWeight",
    "PruningOutcome",
    "PruningResult",
    "RateJudge",
    "Rates",
    "Score",
    "Trial",
    "apply_masks",
    "augmenter",
    "check_augmentable",
    "compute_masks",
    "finetune",
    "finetune_loss",
    "finetune_optimizer",
    "layer_stats",
    "mask_keeper",
    "measure_sparsity",
    "overall_sparsity",
    "prunable_weights",
    "prune",
    "prune_model",
    "run_trial",
    "search_sparsity",
    "select_weights",
    "teacher_targets",
    "threshold_for_sparsity",
]
