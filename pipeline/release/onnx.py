"""The ONNX stage of a build: both .onnx files, their parity and clinical metrics."""

from __future__ import annotations

from typing import Any

from pipeline.config import BuildConfig, Variant
from pipeline.release import artifacts


def onnx_stage(
    model: Any,
    splits: Any,
    config: BuildConfig,
    quant: Any,
    kind: Any,
    paths: dict[Variant, Any],
    stage: artifacts.Staging,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Writes both .onnx files into the staging dir; parity and metrics on the test split,
    at the operating point's `threshold` (default: the configured decision threshold)."""
    from converters import onnx_export
    from pipeline.device.client import run_model
    from pipeline.evaluate.metrics import evaluate, predictions, probabilities
    from pipeline.release import onnx_parity

    x_test = splits.model_inputs("test")
    threshold = config.evaluation.decision_threshold if threshold is None else threshold
    exported = onnx_parity.export(
        model,
        paths[Variant.INT8],
        x_test,
        kind,
        quant.output_kind,
        positive_class=splits.positive_class,
        decision_threshold=threshold,
        opset=config.export.opset,
    )
    # the build always exports the int8 file too
    assert exported.int8_onnx is not None and exported.int8_outputs is not None
    files = {
        "onnx_pruned_float32": stage.write_bytes(onnx_export.FLOAT_FILENAME, exported.float_onnx),
        "onnx_int8": stage.write_bytes(onnx_export.INT8_FILENAME, exported.int8_onnx),
    }
    reference = predictions(
        probabilities(run_model(paths[Variant.FLOAT32], x_test).outputs, kind),
        splits.positive_class,
        threshold,
    )
    metrics = {}
    for name, outputs, variant_kind in (
        ("onnx_pruned_float32", exported.float_outputs, kind),
        ("onnx_int8", exported.int8_outputs, quant.output_kind),
    ):
        metrics[name] = evaluate(
            probabilities(outputs, variant_kind),
            splits.y_test,
            positive_class=splits.positive_class,
            decision_threshold=threshold,
            reference_predictions=reference,
            class_names=splits.class_names,
        ).values
    return {
        "artifacts": {k: artifacts.describe(p, config.out) for k, p in files.items()},
        "metrics": metrics,
        "parity": exported.parity,
        "warnings": exported.warnings(),
    }
