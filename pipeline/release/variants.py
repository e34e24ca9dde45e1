"""The model files of a job: float32, the operating point, pruning, pruned float32, int8 and
its verification on every runtime.

One path for `build` and a sweep point (`pipeline.release.sweep_executor`), so that a sweep
point and a build of the same job choose the same operating point, sparsity and int8 recipe
under the same budgets (AUROC, and at a binary operating point sensitivity, specificity and
Brier score).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.clock import StageClock
from pipeline.config import BuildConfig, Variant
from pipeline.config.budget import ValidationBudget
from pipeline.data.stage import DataStageResult
from pipeline.evaluate.decision import DecisionRule
from pipeline.evaluate.stage import OperatingPoint, int8_rate_budget, operating_point_stage
from pipeline.prune.stage import Pruned, prune_stage
from pipeline.quantize.stage import verify_stage

if TYPE_CHECKING:
    import keras

    from pipeline.quantize.ptq import QuantizationResult


@dataclass(frozen=True)
class Variants:
    """The model files of a job and the stage results that made them.

    Attributes:
        paths: each variant's .tflite file, in `out`.
        point: the operating point chosen on validation from the float32 file.
        pruned: the pruning stage's result.
        model: the pruned (and fine-tuned) Keras model that was quantized.
        quant: the int8 result, verified on every target runtime.
    """

    paths: dict[Variant, Path]
    point: OperatingPoint
    pruned: Pruned
    model: keras.Model
    quant: QuantizationResult


def make_variants(
    loaded: DataStageResult,
    config: BuildConfig,
    clock: StageClock,
    out: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> Variants:
    """Writes the float32, pruned float32 and int8 files of `config`'s job into `out`.

    The operating point is chosen first; `--sparsity auto`, `--structured-sparsity auto`
    and the int8 recipes then keep the validation AUROC and, at a binary operating point,
    the sensitivity, specificity and Brier budgets.

    Args:
        loaded: the model, its splits and output kind.
        config: the job.
        clock: times each stage.
        out: the directory the files are written to.
        progress: reports what is running inside a stage.

    Raises:
        BedsideError: bad input, at the stage that found it.
    """
    from converters import tflite
    from pipeline.quantize import ptq

    splits, kind = loaded.splits, loaded.kind
    paths: dict[Variant, Path] = {}

    def write(variant: Variant, data: bytes) -> Path:
        path = out / variant.filename
        path.write_bytes(data)
        return path

    paths[Variant.FLOAT32] = write(
        Variant.FLOAT32, clock.run("convert float32", lambda: tflite.to_float32(loaded.model))
    )
    point = clock.run(
        "operating point",
        lambda: operating_point_stage(paths[Variant.FLOAT32], splits, kind, config),
    )
    budget = ValidationBudget.of(config)
    pruned = prune_stage(
        loaded.model, splits, kind, config, clock, threshold=point.threshold, budget=budget
    )
    model, reference_val_auroc = pruned.model, pruned.val_auroc
    rates = int8_rate_budget(budget, point.threshold, pruned.val_rates, pruned.val_groups)
    paths[Variant.PRUNED_FLOAT32] = write(
        Variant.PRUNED_FLOAT32,
        clock.run("convert pruned float32", lambda: tflite.to_float32(model)),
    )
    quant: QuantizationResult = clock.run(
        "quantize int8",
        lambda: ptq.quantize(
            model,
            splits,
            config.quantize,
            kind,
            reference_val_auroc,
            config.seed,
            progress,
            rates=rates,
            rule=DecisionRule.of(config),
        ),
    )
    paths[Variant.INT8] = write(Variant.INT8, quant.tflite)
    quant = clock.run(
        "verify runtimes",
        lambda: verify_stage(
            model,
            splits,
            config,
            quant,
            paths[Variant.INT8],
            kind,
            reference_val_auroc,
            progress,
            rates=rates,
        ),
    )
    paths[Variant.INT8] = write(Variant.INT8, quant.tflite)
    return Variants(paths, point, pruned, model, quant)
