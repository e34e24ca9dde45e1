"""The evaluate stage: the operating point chosen on validation, and every variant's
metrics, intervals and changed cases on the test split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import BuildConfig, Variant
from pipeline.config.budget import ValidationBudget
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pipeline.evaluate.operating_point import RateBudget
    from pipeline.evaluate.subgroups import SplitGroups


@dataclass(frozen=True)
class OperatingPoint:
    """The decision threshold every variant is judged at; None for a multi-class task."""

    threshold: float | None
    report: dict[str, Any]


def operating_point_stage(
    float32_path: Path, splits: Any, kind: Any, config: BuildConfig
) -> OperatingPoint:
    """Chooses the threshold on the validation split from the float32 .tflite file.

    Raises:
        ConfigError: a rule other than a fixed threshold on a multi-class task.
    """
    from pipeline.device.client import run_model
    from pipeline.errors import ConfigError
    from pipeline.evaluate import operating_point as op
    from pipeline.evaluate.metrics import probabilities

    rule = config.evaluation.rule
    text = config.evaluation.operating_point or f"threshold={config.evaluation.decision_threshold}"
    probs = probabilities(run_model(float32_path, splits.model_inputs("val")).outputs, kind)
    if probs.shape[1] != 2:
        if config.evaluation.operating_point is not None and rule != ("threshold", 0.5):
            raise ConfigError(
                f"--operating-point {config.evaluation.operating_point} applies to a binary "
                f"task; this model has {probs.shape[1]} classes and predicts the most "
                "probable one. Drop --operating-point (or use threshold=0.5)."
            )
        doc = {"rule": "argmax", "threshold": None, "chosen_on": None, "validation": None}
        return OperatingPoint(None, doc)
    truth, score = splits.y_val == splits.positive_class, probs[:, splits.positive_class]
    if rule[0] != "threshold" and (truth.all() or not truth.any()):
        raise DataError(
            f"--operating-point {text} is chosen on the validation split, which holds a "
            "single class. Use a larger validation split or --operating-point threshold=T."
        )
    threshold = op.choose_threshold(truth, score, rule)
    validation = op.rates(truth, score, threshold)
    return OperatingPoint(threshold, op.describe(text, threshold, validation))


def int8_rate_budget(
    budget: ValidationBudget,
    threshold: float | None,
    reference: Mapping[str, float | None] | None,
    groups: Any = None,
) -> RateBudget | None:
    """What the int8 recipes must keep at the operating point (with `groups`, a
    `GroupBudget`, in every judged validation subgroup too); None for multi-class."""
    from pipeline.evaluate.operating_point import RateBudget

    if threshold is None or reference is None:
        return None
    return RateBudget(budget, reference, threshold, groups=groups)


def evaluate_variants(
    paths: dict[Variant, Path],
    splits: Any,
    split: str,
    kind: Any,
    int8_kind: Any,
    config: BuildConfig,
    point: OperatingPoint | None = None,
) -> dict[str, Any]:
    """Metrics of every variant on `split`, by running the .tflite files in the interpreter,
    at the operating point (chosen here on validation when `point` is None); agreement,
    flips and paired differences are with the first variant (float32), and each metric
    gets its stratified-bootstrap 95% interval (`config.evaluation.bootstrap` replicates).
    """
    from pipeline.device.client import run_model
    from pipeline.evaluate import bootstrap, subgroups
    from pipeline.evaluate.metrics import calibration, evaluate, flips, probabilities

    if point is None:
        point = operating_point_stage(paths[Variant.FLOAT32], splits, kind, config)
    threshold = 0.5 if point.threshold is None else point.threshold
    x, y = splits.model_inputs(split), splits.split(split)[1]
    out: dict[str, Any] = {}
    scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reference = None
    for variant, path in paths.items():
        outputs = run_model(path, x).outputs
        variant_kind = int8_kind if variant is Variant.INT8 else kind
        probs = probabilities(outputs, variant_kind)
        metrics = evaluate(
            probs,
            y,
            positive_class=splits.positive_class,
            decision_threshold=threshold,
            reference_predictions=reference,
            class_names=splits.class_names,
        )
        if reference is None:
            reference = metrics.predictions
        out[variant.value] = metrics.values
        out[variant.value]["calibration"] = calibration(probs, y, splits.positive_class)
        if probs.shape[1] == 2:
            first = next(iter(scored.values()), (probs, None))[0]
            out[variant.value]["flips"] = flips(y, first, probs, splits.positive_class, threshold)
        scored[variant.value] = (probs, metrics.predictions)
    groups = _split_groups(scored, y, splits, split, config)
    # the groups' intervals come from the whole split's replicates, as they are drawn
    tally = None
    if groups is not None and config.evaluation.bootstrap:
        tally = groups.tally(config.evaluation.bootstrap)
    if config.evaluation.bootstrap:
        cis = bootstrap.intervals(
            scored,
            y,
            reference=next(iter(scored)),
            replicates=config.evaluation.bootstrap,
            seed=config.seed,
            positive_class=splits.positive_class,
            points=out,
            on_counts=None if tally is None else tally.add,
        )
        for name, doc in cis.items():
            out[name].update(doc)
            out[name]["bootstrap"] = {
                "replicates": config.evaluation.bootstrap,
                "method": "stratified percentile",
                "seed": config.seed,
            }
    if groups is not None:
        per_variant = groups.report(out, None if tally is None else tally.numerators())
        for name, doc in per_variant.items():
            out[name]["subgroups"] = doc
        subgroups.annotate_flips(out, lambda i: splits.subgroups.case(split, i))
    return out


def _split_groups(
    scored: dict[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    splits: Any,
    split: str,
    config: BuildConfig,
) -> SplitGroups | None:
    """The `--subgroup` groups of `split`, laid out for scoring; None without subgroups."""
    from pipeline.evaluate.subgroups import SplitGroups

    if splits.subgroups is None:
        return None
    return SplitGroups.of(
        scored,
        y,
        splits.subgroups.of(split),
        positive_class=splits.positive_class,
        min_cases=config.evaluation.min_subgroup_cases,
    )
