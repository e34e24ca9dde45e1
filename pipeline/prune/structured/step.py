"""The structured step: drop residual branches, pick channels, rebuild a smaller model,
fine-tune it (`prune_structured`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import StructuredConfig
from pipeline.models.flatten import display_name, flatten
from pipeline.prune.finetune import FinetuneRecipe, check_augmentable, finetune
from pipeline.prune.structured.branches import drop_weakest_branches
from pipeline.prune.structured.outcome import (
    StructuredOutcome,
    group_table,
    layer_table,
    skipped_layers,
)
from pipeline.prune.structured.planning import select_channels
from pipeline.prune.structured.rebuild import mask_removed_inputs, rebuild

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind
    from pipeline.prune.structured.latency import LatencyModel

Score = Callable[["keras.Model"], "float | None"]


def _max_abs_diff(a: keras.Model, b: keras.Model, x: np.ndarray) -> float:
    ya = np.asarray(a.predict(x, verbose=0, batch_size=256))
    yb = np.asarray(b.predict(x, verbose=0, batch_size=256))
    return float(np.max(np.abs(ya - yb))) if ya.size else 0.0


def _finetune_rebuilt(
    pruned: keras.Model,
    teacher: keras.Model,
    splits: Splits,
    kind: OutputKind,
    recipe: FinetuneRecipe,
    seed: int,
) -> dict[str, Any]:
    """Fine-tunes the rebuilt model in place (distilling from `teacher` if the recipe
    says so); the report's `pruning.structured.finetune` section."""
    result = finetune(
        pruned,
        splits,
        kind,
        recipe,
        teacher=teacher if recipe.distill > 0 else None,
        seed=seed,
    )
    return {
        "epochs": result.epochs,
        "steps": result.steps,
        "batch_size": result.batch_size,
        "augment": list(recipe.augment),
        "lr_schedule": recipe.lr_schedule.value,
        "distill": recipe.distill,
        "history": result.history,
    }


def prune_structured(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: StructuredConfig,
    *,
    score: Score,
    seed: int = 0,
    latency: LatencyModel | None = None,
) -> StructuredOutcome:
    """The structured step: drop residual branches, pick channels, rebuild a smaller model,
    fine-tune it.

    `model` is not changed; the outcome holds the new model, built from `model` with its
    nested models inlined (`pipeline.models.flatten`). Before fine-tuning the rebuilt
    model is checked against its reference (`zero_branches`, then `mask_removed_inputs`) on
    the validation inputs; the largest difference is reported.

    Args:
        model: the trained model.
        splits: train split for scoring branches and fine-tuning, val split for validation.
        kind: the model's output kind (the fine-tuning loss when the model has none).
        config: branches to drop, sparsity or threshold, criterion, scope, minimum width,
            and the fine-tuning recipe (epochs, augmentation, learning-rate schedule,
            distillation from `model`).
        score: validation AUROC of a model (None when undefined).
        seed: seed of fine-tuning.
        latency: a latency model of the target built on `model` flattened; given, branches
            and channels are ranked by importance per measured ms saved (not by importance).

    Raises:
        ModelError: the model has no functional graph (a subclassed model), or fewer
            removable residual branches than `config.drop_blocks`.
    """
    from pipeline.prune.macs import total_macs

    original = model
    flat = flatten(model)  # nested backbones become layers of one graph
    model = flat.model
    x_val = splits.model_inputs("val")[:256]
    x_train = splits.model_inputs("train")[:256]  # scores branches and activations
    recipe = FinetuneRecipe.for_structured(config, images=x_train.ndim == 4)
    if recipe.epochs > 0:  # fail before the work, not after it
        check_augmentable(x_train, recipe.augment)
    source, diffs, resize = model, [], None
    if config.resize is not None:  # the enlarging front first: every cut below sees it
        source, resize = _resized(model, config.resize)
    dropped: list[dict[str, Any]] = []
    if config.drop_blocks:
        source, dropped, reference = drop_weakest_branches(
            source, x_train, config.drop_blocks, latency.branch_ms if latency else None
        )
        diffs.append(_max_abs_diff(source, reference, x_val))
    plan = None
    pruned = source
    if config.channels:
        plan = select_channels(source, config, x_train, latency.channel_costs if latency else None)
        pruned = rebuild(source, plan)
        diffs.append(_max_abs_diff(pruned, mask_removed_inputs(source, plan), x_val))
    auroc = {"original": score(original), "pruned": score(pruned), "finetuned": None}
    tuning = None
    if recipe.epochs > 0:
        tuning = _finetune_rebuilt(pruned, model, splits, kind, recipe, seed)
        auroc["finetuned"] = score(pruned)
    return StructuredOutcome(
        config=config,
        model=pruned,
        macs_before=total_macs(original),
        macs_after=total_macs(pruned),
        params_before=int(original.count_params()),
        params_after=int(pruned.count_params()),
        prunable_channels=plan.prunable_channels if plan else 0,
        removed_channels=plan.removed if plan else 0,
        layers=layer_table(original, pruned),
        skipped=skipped_layers(plan, flat),
        groups=group_table(plan) if plan else (),
        rebuild_max_abs_diff=max(diffs) if diffs else None,
        val_auroc=auroc,
        finetune=tuning,
        dropped_blocks=tuple(dropped),
        flattened=flat.flattened,
        resize=resize,
    )


def _resized(model: keras.Model, side: int) -> tuple[keras.Model, dict[str, Any]]:
    """`model` with its Resizing front at `side` x `side`, and the report's record."""
    from pipeline.prune.structured.resize import front, resized

    before = front(model)
    new = resized(model, side)
    assert before is not None  # resized() refuses a model without one
    return new, {
        "layer": display_name(before.layer),
        "input": list(before.source),
        "before": list(before.size),
        "after": [side, side],
        "enlarges": side >= max(before.source),
    }
