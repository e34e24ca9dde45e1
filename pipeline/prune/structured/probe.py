"""The real profilers of the latency model: one-layer Keras models and whole models
converted to int8 TFLite here and measured through pipeline/device, on this machine's
runtime (`LocalProfiler`) or on an SSH device's (`RemoteProfiler`, `--latency-target`).

Converting a one-layer model takes about a second; `LayerTimes` caches every result by
shape and runtime (a device's runtime name holds its address), so a model's layers are
converted once per target.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config.inventory import Device
from pipeline.prune.structured.latency import LayerShape, Profiler

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


class TargetProfiler:
    """Converts here and measures on `device` (None: this machine), through pipeline/device:
    all files of one call in one device_bench run (on a device, one SSH session).

    Raises:
        DeviceError: `device` cannot be reached (when made, before any measuring).
    """

    def __init__(
        self, calibration: np.ndarray, threads: int = 1, device: Device | None = None
    ) -> None:
        from pipeline.device.latency_model import runtime_name

        self.calibration = calibration  # model inputs calibrating whole models
        self.device = device
        self.threads = threads
        self.runtime = runtime_name(threads, device)

    def _measure(self, models: list[tuple[Any, np.ndarray]], whole: bool) -> list[float]:
        from converters.tflite import to_int8
        from pipeline.device.latency_model import files_ms

        with tempfile.TemporaryDirectory(prefix="bedside-latency-") as tmp:
            files = []
            for i, (model, calibration) in enumerate(models):
                path = Path(tmp) / f"m{i}.tflite"
                path.write_bytes(to_int8(model, calibration))
                files.append(path)
            return files_ms(files, whole=whole, threads=self.threads, device=self.device)

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

    def models_ms(self, models: Sequence[keras.Model]) -> list[float]:
        return self._measure([(m, self.calibration) for m in models], whole=True)


class LocalProfiler(TargetProfiler):
    """Measures on this machine's LiteRT (the bench's runtime)."""

    def __init__(self, calibration: np.ndarray, threads: int = 1) -> None:
        super().__init__(calibration, threads)


class RemoteProfiler(TargetProfiler):
    """Measures on `device`'s own runtime over SSH, with its inventory threads if set (else
    `threads`); asks the device what it runs when made, so an unreachable device fails
    before any fine-tuning."""

    def __init__(self, calibration: np.ndarray, device: Device, threads: int = 1) -> None:
        super().__init__(calibration, device.threads or threads, device)


def profiler_for(calibration: np.ndarray, threads: int, device: Device | None) -> Profiler:
    """The profiler of `--latency-target`: this machine's when `device` is None."""
    if device is None:
        return LocalProfiler(calibration, threads)
    return RemoteProfiler(calibration, device, threads)
