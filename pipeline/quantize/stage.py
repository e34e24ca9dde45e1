"""The verify stage: the int8 file on every target runtime; a failing sparse encoding is dropped."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import BuildConfig, RuntimeTarget, Variant
from pipeline.evaluate.decision import DecisionRule
from pipeline.quantize.result import QuantizationResult, SparseEncoding

if TYPE_CHECKING:
    from pipeline.evaluate.operating_point import RateBudget


def verify_stage(
    model: Any,
    splits: Any,
    config: BuildConfig,
    quant: QuantizationResult,
    path: Any,
    kind: Any,
    reference_val_auroc: float | None,
    progress: Callable[[str], None],
    rates: RateBudget | None = None,
) -> QuantizationResult:
    """Runs the int8 file on every target runtime; drops a sparse encoding that fails."""
    from dataclasses import replace

    from converters import tflite
    from converters.inspection import inspect_tflite
    from pipeline.evaluate.metrics import predictions, probabilities
    from pipeline.quantize import ptq as quantization
    from pipeline.quantize.verification import RuntimeCheck, float_divergence, target_name, verify

    x_test = splits.model_inputs("test")
    if quant.postprocess == "none":
        reference = model.predict(x_test, verbose=0, batch_size=256)
    else:
        with tflite.logits_view(model) as (view, _):
            reference = view.predict(x_test, verbose=0, batch_size=256)

    threshold = rates.threshold if rates is not None else 0.5

    def predict(outputs: np.ndarray) -> np.ndarray:
        probs = probabilities(outputs, quant.output_kind)
        return predictions(probs, splits.positive_class, threshold)

    def run_checks(data_path: Any) -> list[RuntimeCheck]:
        info = inspect_tflite(data_path)
        scale = info.tensors[info.outputs[0]].scale
        return verify(
            data_path,
            x_test,
            reference,
            scale[0] if scale else 1.0,
            predict,
            config.quantize.runtimes,
            config.quantize.runtime_python,
            config.device.devices,
        )

    progress("verify runtimes")
    checks = run_checks(path)
    requested, kept, reason = config.quantize.sparse_encoding, False, None
    if requested:
        # TFLM has no DENSIFY kernel: it refuses every sparse file. Verified whenever
        # [micro] is installed, it decides the encoding only when required.
        required = RuntimeTarget.TFLM in config.quantize.require_runtimes
        failed = [
            c
            for c in checks
            if c.status != "ok" and (required or c.target is not RuntimeTarget.TFLM)
        ]
        if failed:
            reason = "; ".join(f"{target_name(c.target)}: {c.status} ({c.reason})" for c in failed)
            dense_config = replace(config.quantize, sparse_encoding=False)
            quant = quantization.quantize(
                model,
                splits,
                dense_config,
                kind,
                reference_val_auroc,
                config.seed,
                progress,
                rates=rates,
                rule=DecisionRule.of(config),
            )
            path.write_bytes(quant.tflite)
            checks = run_checks(path)
        else:
            kept = True
    micro = None
    if RuntimeTarget.TFLM in config.quantize.runtimes:
        from pipeline.device.client import micro_footprint
        from pipeline.quantize.verification import micro_verdict

        progress("TFLM arena search")
        micro = micro_footprint(path)
        checks = micro_verdict(checks, micro)
    if not quant.budget_met:
        # the pruned float32 file is written beside the int8 one before verification
        reference_file = path.with_name(Variant.PRUNED_FLOAT32.filename)
        checks = float_divergence(path, reference_file, x_test, checks)
    return replace(
        quant,
        sparse_encoding=SparseEncoding(requested, kept, reason),
        micro=micro,
        verification=tuple(checks),
    )
