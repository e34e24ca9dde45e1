"""The prune stage: flattening, structured pruning, threshold pruning and fine-tuning."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.clock import StageClock
from pipeline.config import BuildConfig
from pipeline.config.budget import ValidationBudget

if TYPE_CHECKING:
    from pipeline.evaluate.decision import ModelJudge
    from pipeline.models.flatten import Flattened
    from pipeline.prune.auto import Rates
    from pipeline.prune.outcome import PruningOutcome
    from pipeline.prune.structured import StructuredOutcome


def _keras_val_auroc(model: Any, splits: Any, kind: Any) -> float | None:
    from pipeline.evaluate.metrics import evaluate, probabilities

    outputs = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
    return evaluate(
        probabilities(outputs, kind), splits.y_val, positive_class=splits.positive_class
    )["auroc"]


def _keras_val_probs(model: Any, splits: Any, kind: Any) -> Any:
    """Validation probabilities (N, C) of a Keras model."""
    from pipeline.evaluate.metrics import probabilities

    return probabilities(model.predict(splits.model_inputs("val"), verbose=0, batch_size=256), kind)


def paired_judges(
    splits: Any,
    kind: Any,
    config: BuildConfig,
    threshold: float | None,
    budget: ValidationBudget | None,
) -> Callable[[Any], ModelJudge]:
    """The paired judge (`--decide`) of the prune searches against a reference model."""
    from pipeline.evaluate.decision import DecisionRule, ModelJudge, PairedJudge

    rule = DecisionRule.of(config)

    def probs(m: Any) -> Any:
        return _keras_val_probs(m, splits, kind)

    def of(reference: Any) -> ModelJudge:
        groups = None
        if threshold is not None and budget is not None:
            drops = (budget, config.prune.max_prune_drop, config.evaluation.min_subgroup_cases)
            groups = _group_budget(reference, splits, kind, threshold, drops)
        paired = PairedJudge.of_reference(
            probs(reference),
            splits.y_val,
            splits.positive_class,
            threshold,
            config.prune.max_prune_drop,
            budget,
            rule,
            groups=groups,
        )
        return ModelJudge(probs, paired)

    return of


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


def _structured(
    model: Any,
    splits: Any,
    kind: Any,
    config: BuildConfig,
    rates: Rates | None,
    budget: ValidationBudget | None,
    paired: Callable[[Any], ModelJudge],
) -> StructuredOutcome:
    """The structured step, or with `--structured-sparsity auto` its search (judging the
    validation rates at the operating point within `budget` too when `rates` is given)."""
    from pipeline.prune import structured
    from pipeline.prune.auto import RateJudge

    def score(m: Any) -> float | None:
        return _keras_val_auroc(m, splits, kind)

    if not config.structured.auto:
        return structured.prune_structured(
            model, splits, kind, config.structured, seed=config.seed, score=score
        )
    judge = None
    if rates is not None and budget is not None:
        judge = RateJudge.of_original(model, rates, budget)
    profiler = None
    if config.structured.speedup_target is not None:  # measures on --latency-target
        from pipeline.prune.structured.probe import profiler_for

        calibration = splits.model_inputs("train")[:100]
        profiler = profiler_for(calibration, config.bench.threads, config.device.latency_device)
    return structured.search_structured(
        model,
        splits,
        kind,
        config.structured,
        config.prune.max_prune_drop,
        score=score,
        seed=config.seed,
        rates=judge,
        profiler=profiler,
        paired=paired(model),
    )


@dataclass(frozen=True)
class Pruned:
    """The prune stage's result: the pruned (and fine-tuned) model and how it got there."""

    model: Any = field(repr=False)  # rebuilt and smaller after structured pruning; else in place
    outcome: PruningOutcome  # threshold pruning (and its auto search)
    structured: StructuredOutcome | None  # None: structured pruning off
    flatten: Flattened | None  # None: no nested model was inlined
    source_parameters: int
    val_rates: Mapping[str, float | None] | None = None  # validation rates at the operating point
    val_groups: Any = None  # ... its per-subgroup budget for int8 (evaluate.subgroups)

    @property
    def val_auroc(self) -> float | None:
        """Validation AUROC of the model that gets quantized."""
        return self.outcome.val_auroc

    def to_json(self) -> dict[str, Any]:
        """The report's `pruning` section."""
        return {
            **self.outcome.to_json(),
            "structured": self.structured.to_json() if self.structured else None,
            "flatten": self.flatten.to_json() if self.flatten else None,
        }


def prune_stage(
    model: Any,
    splits: Any,
    kind: Any,
    config: BuildConfig,
    clock: StageClock,
    threshold: float | None = None,
    budget: ValidationBudget | None = None,
) -> Pruned:
    """Structured pruning (if enabled), threshold pruning and fine-tuning; with a binary
    operating point's `threshold` and the validation `budget`, the auto searches also
    watch the validation sensitivity, specificity and Brier score there."""
    from pipeline.models.flatten import flatten, needs_flattening
    from pipeline.prune.outcome import prune_model

    # structured: remove whole channels, rebuild a smaller model that replaces `model`
    # for the rest of the build (the float32 variant converted before stays the original)
    structured_outcome = flattened = None
    source_parameters = int(model.count_params())

    pruning_on = config.structured.enabled or config.prune.target_sparsity != 0
    unflattened = model
    if pruning_on and needs_flattening(model):
        # nested backbones inlined once, so every pruning path sees their layers
        flat = clock.run("flatten nested models", lambda: flatten(model))
        model, flattened = flat.model, flat
    rates: Rates | None = None
    if threshold is not None and budget is not None:
        cut = threshold
        ev = config.evaluation
        groups = _group_budget(
            model, splits, kind, cut, (ev, config.prune.max_prune_drop, ev.min_subgroup_cases)
        )

        def rates(m: Any) -> dict[str, float | None]:
            return _keras_val_rates(m, splits, kind, cut, groups)

    paired = paired_judges(splits, kind, config, threshold, budget)
    if config.structured.enabled:
        outcome = clock.run(
            "structured prune",
            lambda: _structured(model, splits, kind, config, rates, budget, paired),
        )
        model, structured_outcome = outcome.model, outcome
        threshold_off = config.prune.target_sparsity == 0
        if outcome.auto and outcome.auto.chosen_sparsity is None and threshold_off:
            # auto chose nothing and threshold pruning is off: no pruning, so no flattening
            model, flattened = unflattened, None

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
            budget=budget,
            paired=paired,
        ),
    )
    val_rates = val_groups = None
    if threshold is not None and budget is not None:
        val_rates = _keras_val_rates(model, splits, kind, threshold)
        drops = (budget, config.quantize.max_auroc_drop, config.evaluation.min_subgroup_cases)
        val_groups = _group_budget(model, splits, kind, threshold, drops)
    return Pruned(
        model, pruned, structured_outcome, flattened, source_parameters, val_rates, val_groups
    )
