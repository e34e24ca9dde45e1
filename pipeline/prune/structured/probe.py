"""The real profiler of the latency model: one-layer Keras models and whole models
converted to int8 TFLite and measured on this machine's runtime through pipeline/device.

Converting a one-layer model takes about a second; `LayerTimes` caches every result by
shape and runtime, so a model's layers are converted once per target.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.prune.structured.latency import LayerShape

if TYPE_CHECKING:
    import keras

CALIBRATION = 8  # random inputs calibrating a one-layer model (time does not depend on them)


def one_layer_model(shape: LayerShape) -> keras.Model:
    """A model of one layer of this kind and these shapes (random weights)."""
    import keras

    layers: dict[str, Any] = {
        "Dense": lambda: keras.layers.Dense(shape.out_channels),
        "DepthwiseConv1D": lambda: keras.layers.DepthwiseConv1D(
            shape.kernel_size, shape.strides, shape.padding,
            depth_multiplier=shape.depth_multiplier,
        ),
        "DepthwiseConv2D": lambda: keras.layers.DepthwiseConv2D(
            shape.kernel_size, shape.strides, shape.padding,
            depth_multiplier=shape.depth_multiplier,
        ),
    }  # fmt: skip
    make = layers.get(shape.kind)
    if make is None:  # Conv*, SeparableConv*, Conv*Transpose share one signature
        cls = getattr(keras.layers, shape.kind)
        layer = cls(shape.out_channels, shape.kernel_size, shape.strides, shape.padding)
    else:
        layer = make()
    inputs = keras.Input(shape.input_shape)
    return keras.Model(inputs, layer(inputs))


class LocalProfiler:
    """Measures on this machine's LiteRT (the bench's runtime), through pipeline/device."""

    def __init__(self, calibration: np.ndarray, threads: int = 1) -> None:
        from pipeline.device.latency_model import runtime_name

        self.calibration = calibration  # model inputs calibrating whole models
        self.threads = threads
        self.runtime = runtime_name(threads)

    def _measure(self, models: list[tuple[Any, np.ndarray]], whole: bool) -> list[float]:
        from converters.tflite import to_int8
        from pipeline.device.latency_model import files_ms

        with tempfile.TemporaryDirectory(prefix="bedside-latency-") as tmp:
            files = []
            for i, (model, calibration) in enumerate(models):
                path = Path(tmp) / f"m{i}.tflite"
                path.write_bytes(to_int8(model, calibration))
                files.append(path)
            return files_ms(files, whole=whole, threads=self.threads)

    def layers_ms(self, shapes: Sequence[LayerShape]) -> list[float]:
        rng = np.random.default_rng(0)
        models = [
            (
                one_layer_model(s),
                rng.standard_normal((CALIBRATION, *s.input_shape)).astype(np.float32),
            )
            for s in shapes
        ]
        return self._measure(models, whole=False)

    def model_ms(self, model: keras.Model) -> float:
        return self._measure([(model, self.calibration)], whole=True)[0]
