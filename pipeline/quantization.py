"""The int8 stage: pick the representative dataset, convert, prove the result full-integer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import QuantizeConfig
from pipeline.errors import QuantizationError

if TYPE_CHECKING:
    import keras

    from pipeline.data import Splits


def calibration_indices(y: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Deterministic label-stratified choice of `samples` indices (all if fewer).

    Each class gets a share proportional to its frequency (largest remainders), so a rare
    class is represented in the activation ranges as it is in the data.
    """
    if samples >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts / counts.sum() * samples
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: samples - take.sum()]:
        take[i] += 1
    chosen = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class QuantizationResult:
    """The int8 flatbuffer and what inspection proved about it."""

    tflite: bytes
    report: dict[str, Any]


def quantize(model: keras.Model, splits: Splits, config: QuantizeConfig,
             seed: int = 0) -> QuantizationResult:
    """Full-integer int8 PTQ calibrated on the train split, verified from the file.

    Raises:
        QuantizationError: the converter cannot quantize an op, or the file it produced
            still holds a float tensor.
    """
    from converters import tflite
    from converters.inspection import inspect_tflite, require_full_integer

    idx = calibration_indices(splits.y_train, config.calibration_samples, seed)
    calibration = splits.model_inputs("train")[idx]
    try:
        data = tflite.to_int8(model, calibration)
    except Exception as exc:  # noqa: BLE001 - the converter raises a variety of types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantizationError(
            f"Full-integer int8 conversion failed: {first}. An op of the model has no int8 "
            "TFLite kernel; replace that layer or build with float edges."
        ) from None
    info = inspect_tflite(data)
    require_full_integer(info, "model_int8.tflite")
    doc = info.to_json()
    report = {
        "full_integer": info.full_integer,
        "input": doc["input"],
        "output": doc["output"],
        "io": "int8",
        "activations": "int8",
        "calibration_samples": int(len(idx)),
        "calibration_label_counts": np.bincount(splits.y_train[idx],
                                                minlength=splits.num_classes).tolist(),
        "op_summary": doc["op_summary"],
    }
    return QuantizationResult(data, report)
