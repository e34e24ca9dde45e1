"""Whether the ONNX files compute what their sources do, closely enough to ship.

`converters.onnx_export` converts and returns raw outputs; the verdict is policy and lives
here: the float ONNX model against Keras as the largest absolute difference of class
probabilities, the int8 ONNX model against the int8 .tflite as agreement of predictions at
the operating point and the largest difference in output quantization steps. Used by the
build's ONNX stage (`pipeline/release/onnx.py`) and by `export-onnx`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from converters.onnx_export import DEFAULT_OPSET, FLOAT_FILENAME, INT8_FILENAME
from pipeline.models import OutputKind

if TYPE_CHECKING:
    import keras

# Largest |p_onnx - p_keras| of any class probability: the float graphs compute the same
# arithmetic, so anything above float32 round-off means a wrong conversion.
FLOAT_BOUND = 1e-4
# The int8 graph re-implements TFLite's integer kernels with QDQ ops; rounding of the
# requantization may differ by one step, never more.
INT8_MAX_STEPS = 1
INT8_MIN_AGREEMENT = 0.99


def float_parity(
    onnx_probs: np.ndarray, keras_probs: np.ndarray, bound: float = FLOAT_BOUND
) -> dict[str, Any]:
    """Float ONNX vs Keras: the largest absolute difference of class probabilities."""
    diff = float(
        np.max(np.abs(np.asarray(onnx_probs, np.float64) - np.asarray(keras_probs, np.float64)))
    )
    return {"max_abs_diff": diff, "bound": bound, "ok": bool(diff <= bound)}


def int8_parity(
    onnx_raw: np.ndarray,
    tflite_raw: np.ndarray,
    onnx_pred: np.ndarray,
    tflite_pred: np.ndarray,
    max_steps: int = INT8_MAX_STEPS,
    min_agreement: float = INT8_MIN_AGREEMENT,
) -> dict[str, Any]:
    """Int8 ONNX vs the int8 .tflite: prediction agreement and output step difference.

    Steps are counted on integer outputs; for float outputs (`--io float32`) `max_steps`
    is None and only agreement and `max_abs_diff` are judged.
    """
    from converters.onnx_export import output_difference

    agreement = float(np.mean(np.asarray(onnx_pred) == np.asarray(tflite_pred)))
    max_abs_diff, steps = output_difference(onnx_raw, tflite_raw)
    ok = agreement >= min_agreement and (steps is None or steps <= max_steps)
    return {
        "agreement": agreement,
        "min_agreement": min_agreement,
        "max_steps": steps,
        "steps_bound": max_steps,
        "max_abs_diff": max_abs_diff,
        "ok": bool(ok),
    }


@dataclass(frozen=True)
class OnnxExport:
    """The ONNX files and the evidence that they compute what their sources do."""

    float_onnx: bytes
    int8_onnx: bytes | None
    parity: dict[str, Any]  # {"float": {...}, "int8": {...} or None, "opset": int}
    float_outputs: np.ndarray  # float ONNX outputs on the parity inputs
    int8_outputs: np.ndarray | None  # int8 ONNX outputs there, dequantized to real values

    @property
    def ok(self) -> bool:
        return all(doc["ok"] for doc in (self.parity["float"], self.parity["int8"]) if doc)

    def warnings(self) -> list[str]:
        out = []
        f, q = self.parity["float"], self.parity["int8"]
        if not f["ok"]:
            out.append(
                f"ONNX float parity failed: max |p_onnx - p_keras| = "
                f"{f['max_abs_diff']:.3g} > {f['bound']:g}. Do not ship "
                f"{FLOAT_FILENAME}; check the tf2onnx version and --opset."
            )
        if q and not q["ok"]:
            out.append(
                f"ONNX int8 parity failed: agreement {q['agreement']:.4f} with the "
                f".tflite (needs >= {q['min_agreement']}), max output difference "
                f"{q['max_steps']} step(s) (bound {q['steps_bound']}). Do not ship "
                f"{INT8_FILENAME}; check the tf2onnx version and --opset."
            )
        return out


def export(
    model: keras.Model,
    int8_tflite: Path | None,
    x: np.ndarray,
    kind: OutputKind,
    int8_kind: OutputKind,
    positive_class: int = 1,
    decision_threshold: float = 0.5,
    opset: int = DEFAULT_OPSET,
) -> OnnxExport:
    """Converts the model(s) and judges parity in onnxruntime on the samples `x`.

    Args:
        model, int8_tflite, x, opset: as `converters.onnx_export.export` takes them.
        kind: what the Keras model's output holds.
        int8_kind: what the int8 model's output holds (`QuantizationResult.output_kind`:
            logits when the sigmoid/softmax moved to the host).
        positive_class: the clinically positive class of a binary task.
        decision_threshold: P(positive) from which a case is called positive (binary).

    Returns:
        Both files as bytes, the parity document and the ONNX outputs on `x`.
    """
    from converters import onnx_export
    from pipeline.evaluate.metrics import predictions, probabilities

    converted = onnx_export.export(model, int8_tflite, x, opset)
    parity: dict[str, Any] = {
        "float": float_parity(
            probabilities(converted.float_outputs, kind),
            probabilities(converted.keras_outputs, kind),
        ),
        "int8": None,
        "opset": opset,
    }
    int8 = converted.int8
    if int8 is None:
        return OnnxExport(converted.float_onnx, None, parity, converted.float_outputs, None)

    def predict(outputs: np.ndarray) -> np.ndarray:
        return predictions(probabilities(outputs, int8_kind), positive_class, decision_threshold)

    parity["int8"] = int8_parity(
        int8.onnx_raw, int8.tflite_raw, predict(int8.onnx_outputs), predict(int8.tflite_outputs)
    )
    return OnnxExport(
        converted.float_onnx,
        converted.int8_onnx,
        parity,
        converted.float_outputs,
        int8.onnx_outputs,
    )
