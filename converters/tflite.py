"""Keras 3 -> TFLite conversion: float32, and full-integer int8 post-training quantization.

The model is exported as a SavedModel with one explicit endpoint (batch dimension dynamic,
input named `input`, output `output`, so the .tflite signature is stable) and that is
converted: `TFLiteConverter.from_keras_model` has known Keras 3 failures. If the export
fails, a frozen concrete function of the model is converted instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

INPUT_NAME = "input"
OUTPUT_NAME = "output"
SIGNATURE_KEY = "serving_default"


def _export_saved_model(model: keras.Model, directory: str) -> None:
    """Writes a SavedModel whose one endpoint maps `input` to `output`."""
    import keras
    import tensorflow as tf

    spec = model.inputs[0]
    signature = [tf.TensorSpec((None, *spec.shape[1:]), tf.float32, name=INPUT_NAME)]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE_KEY,
        fn=lambda x: {OUTPUT_NAME: model(x, training=False)},
        input_signature=signature,
    )
    archive.write_out(directory, verbose=False)


def _converter(model: keras.Model, workdir: str) -> Any:
    """A converter from a SavedModel export (the path Keras 3 supports).

    If the export fails (some Keras 3 layers do not trace through ExportArchive), the
    model is traced into a frozen concrete function instead.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        _export_saved_model(model, workdir)
        return tf.lite.TFLiteConverter.from_saved_model(workdir, signature_keys=[SIGNATURE_KEY])
    except Exception:  # noqa: BLE001 - fall back on any export failure
        spec = model.inputs[0]
        signature = [tf.TensorSpec((None, *spec.shape[1:]), tf.float32, name=INPUT_NAME)]
        fn = tf.function(lambda x: {OUTPUT_NAME: model(x, training=False)},
                         input_signature=signature)
        return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])


def _convert(model: keras.Model, configure: Callable[[Any], None] | None = None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="bedside-savedmodel-") as workdir:
        converter = _converter(model, workdir)
        if configure is not None:
            configure(converter)
        return bytes(converter.convert())


def to_float32(model: keras.Model) -> bytes:
    """Converts to a float32 .tflite flatbuffer (no optimization)."""
    return _convert(model)


def representative_dataset(x: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A generator factory yielding one preprocessed sample at a time, batch 1."""

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(x)):
            yield [x[i : i + 1].astype(np.float32)]

    return gen


def to_int8(model: keras.Model, calibration: np.ndarray) -> bytes:
    """Full-integer int8 post-training quantization with int8 input and output.

    Args:
        model: the (pruned) Keras model.
        calibration: preprocessed calibration samples, shaped like the model input.

    Returns:
        The .tflite flatbuffer. Every op is restricted to TFLITE_BUILTINS_INT8, so the
        converter fails instead of silently leaving float ops.
    """
    import tensorflow as tf

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    return _convert(model, configure)
