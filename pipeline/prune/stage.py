"""The prune stage: flattening, structured pruning, threshold pruning and fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.clock import StageClock
from pipeline.config import BuildConfig


def _keras_val_auroc(model: Any, splits: Any, kind: Any) -> float | None:
    from pipeline.evaluate.metrics import evaluate, probabilities

    outputs = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
    return evaluate(
        probabilities(outputs, kind), splits.y_val, positive_class=splits.positive_class
    )["auroc"]


def _keras_val_score(model: Any, splits: Any, kind: Any) -> Any:
    """Validation probability of the positive class."""
    from pipeline.evaluate.metrics import probabilities

    outputs = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
    return probabilities(outputs, kind)[:, splits.positive_class]


def _keras_val_rates(
    model: Any, splits: Any, kind: Any, threshold: float, groups: Any = None
) -> dict[str, Any]:
    """Validation sensitivity, specificity (at the operating point) and Brier score; with
    `groups` (a `GroupBudget`) also the worst judged --subgroup against its budget."""
    from pipeline.evaluate.operating_point import rates

    p = _keras_val_score(model, splits, kind)
    out = rates(splits.y_val == splits.positive_class, p, threshold)
    return out if groups is None else {**out, **groups.worst_group(p)}


def _group_budget(model: Any, splits: Any, kind: Any, threshold: float, drops: Any) -> Any:
    """The per-subgroup budget counted from `model` (None without judged --subgroup)."""
    from pipeline.evaluate.subgroups import GroupBudget

    if splits.subgroups is None:
        return None
    ev, max_auroc_drop, min_cases = drops
    return GroupBudget.of(
        splits.subgroups.of("val"),
        splits.y_val == splits.positive_class,
        _keras_val_score(model, splits, kind),
        threshold,
        min_cases,
        {
            "auroc": max_auroc_drop,
            "sensitivity": ev.max_sensitivity_drop,
            "specificity": ev.max_specificity_drop,
        },
    )


def _structured(model: Any, splits: Any, kind: Any, config: BuildConfig, rates: Any) -> Any:
    """The structured step, or with `--structured-sparsity auto` its search (judging the
    validation rates at the operating point too when `rates` is given)."""
    from pipeline.prune import structured
    from pipeline.prune.auto import RateJudge

    def score(m: Any) -> float | None:
        return _keras_val_auroc(m, splits, kind)

    if not config.structured.auto:
        return structured.prune_structured(
            model, splits, kind, config.structured, seed=config.seed, score=score
        )
    judge = None
    if rates is not None:
        ev = config.evaluation
        judge = RateJudge.of_original(
            model, rates, ev.max_sensitivity_drop, ev.max_specificity_drop, ev.max_brier_increase
        )
    return structured.search_structured(
        model,
        splits,
        kind,
        config.structured,
        config.prune.max_prune_drop,
        score=score,
        seed=config.seed,
        rates=judge,
    )


@dataclass
class Pruned:
    """The pruned (and fine-tuned) model with its report block."""

    model: Any  # a rebuilt, smaller model after structured pruning; else the same, in place
    report: dict[str, Any]
    source_parameters: int
    val_auroc: float | None  # validation AUROC of the model that gets quantized
    val_rates: dict[str, Any] | None = None  # ... its sensitivity, specificity, Brier there
    val_groups: Any = None  # ... its per-subgroup budget for int8 (evaluate.subgroups)


def prune_stage(
    model: Any,
    splits: Any,
    kind: Any,
    config: BuildConfig,
    clock: StageClock,
    threshold: float | None = None,
) -> Pruned:
    """Structured pruning (if enabled), threshold pruning and fine-tuning; with a binary
    operating point's `threshold`, auto sparsity also watches the validation sensitivity,
    specificity and Brier score there."""
    from pipeline.prune.flatten import flatten, needs_flattening
    from pipeline.prune.outcome import prune_model

    # structured: remove whole channels, rebuild a smaller model that replaces `model`
    # for the rest of the build (the float32 variant converted before stays the original)
    structured_report = flatten_report = None
    source_parameters = int(model.count_params())

    pruning_on = config.structured.enabled or config.prune.target_sparsity != 0
    unflattened = model
    if pruning_on and needs_flattening(model):
        # nested backbones inlined once, so every pruning path sees their layers
        flat = clock.run("flatten nested models", lambda: flatten(model))
        model, flatten_report = flat.model, flat.to_json()
    rates = None
    if threshold is not None:
        cut = threshold
        ev = config.evaluation
        groups = _group_budget(
            model, splits, kind, cut, (ev, config.prune.max_prune_drop, ev.min_subgroup_cases)
        )

        def rates(m: Any) -> dict[str, Any]:
            return _keras_val_rates(m, splits, kind, cut, groups)

    if config.structured.enabled:
        outcome = clock.run(
            "structured prune", lambda: _structured(model, splits, kind, config, rates)
        )
        model = outcome.model
        structured_report = outcome.to_json()
        threshold_off = config.prune.target_sparsity == 0
        if outcome.auto and outcome.auto.chosen_sparsity is None and threshold_off:
            # auto chose nothing and threshold pruning is off: no pruning, so no flattening
            model, flatten_report = unflattened, None

    # prune (auto: search the sparsity) and fine-tune, in place
    pruned = clock.run(
        "prune",
        lambda: prune_model(
            model,
            splits,
            kind,
            config.prune,
            seed=config.seed,
            score=lambda m: _keras_val_auroc(m, splits, kind),
            rates=rates,
            max_sensitivity_drop=config.evaluation.max_sensitivity_drop,
            max_specificity_drop=config.evaluation.max_specificity_drop,
            max_brier_increase=config.evaluation.max_brier_increase,
        ),
    )
    pruning_report = pruned.to_json()
    pruning_report["structured"] = structured_report
    pruning_report["flatten"] = flatten_report
    history = pruning_report["finetune"]
    pruned_val_auroc = pruning_report["validation_auroc"]["pruned"]
    finetuned_val_auroc = pruning_report["validation_auroc"]["finetuned"]
    reference_val_auroc = finetuned_val_auroc if history else pruned_val_auroc
    val_rates = val_groups = None
    if threshold is not None:
        val_rates = _keras_val_rates(model, splits, kind, threshold)
        ev = config.evaluation
        drops = (ev, config.quantize.max_auroc_drop, ev.min_subgroup_cases)
        val_groups = _group_budget(model, splits, kind, threshold, drops)
    return Pruned(
        model, pruning_report, source_parameters, reference_val_auroc, val_rates, val_groups
    )
