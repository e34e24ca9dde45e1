"""Keras 3 -> TFLite conversion: float32, and full-integer int8 post-training quantization.

The model is exported as a SavedModel with one explicit endpoint (batch dimension dynamic,
input named `input`, output `output`, so the .tflite signature is stable) and that is
converted: `TFLiteConverter.from_keras_model` has known Keras 3 failures. If the export
fails, a frozen concrete function of the model is converted instead.
"""

from __future__ import annotations

import contextlib
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


def make_converter(model: keras.Model, workdir: str) -> Any:
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
        fn = tf.function(
            lambda x: {OUTPUT_NAME: model(x, training=False)}, input_signature=signature
        )
        return tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])


def _convert(model: keras.Model, configure: Callable[[Any], None] | None = None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="bedside-savedmodel-") as workdir:
        converter = make_converter(model, workdir)
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


IO_TYPES = ("int8", "uint8", "float32")
ACTIVATION_TYPES = ("int8", "int16")


def to_int8(
    model: keras.Model,
    calibration: np.ndarray,
    *,
    io: str = "int8",
    activations: str = "int8",
    sparse: bool = False,
) -> bytes:
    """Full-integer post-training quantization (int8 weights).

    Args:
        model: the (pruned) Keras model.
        calibration: preprocessed calibration samples, shaped like the model input.
        io: type of the model's input and output tensors: `int8` (int16 in 16x8 mode),
            `uint8`, or `float32` (QUANTIZE/DEQUANTIZE at the edges, integer inside).
        activations: `int8`, or `int16` for the 16x8 mode (int16 activations, int8 weights).
        sparse: also store pruned weights in TFLite's sparse format (EXPERIMENTAL_SPARSITY).

    Returns:
        The .tflite flatbuffer. Ops are restricted to the integer op sets, so the converter
        fails instead of silently leaving float ops.
    """
    import tensorflow as tf

    if io not in IO_TYPES or activations not in ACTIVATION_TYPES:
        raise ValueError(
            f"io must be one of {IO_TYPES} and activations one of "
            f"{ACTIVATION_TYPES}; received io={io!r}, activations={activations!r}"
        )
    if activations == "int16":
        ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        integer_io = tf.int16
    else:
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        integer_io = tf.uint8 if io == "uint8" else tf.int8

    def configure(converter: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if sparse:
            converter.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
        converter.representative_dataset = representative_dataset(calibration)
        converter.target_spec.supported_ops = ops
        if io != "float32":
            converter.inference_input_type = integer_io
            converter.inference_output_type = integer_io

    return _convert(model, configure)


@contextlib.contextmanager
def logits_view(model: keras.Model) -> Iterator[tuple[keras.Model, str]]:
    """The model with its final sigmoid/softmax removed, and the name of what was removed.

    An int8 sigmoid output has only 256 levels: on a confident model many cases tie at the
    top level and AUROC falls. Emitting logits and applying the activation on the host keeps
    the ranking. Yields `(model, "none")` when the model already ends in logits.
    """
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", "")
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)) and name in (
        "",
        "softmax",
        "sigmoid",
    ):
        removed = "softmax" if isinstance(last, keras.layers.Softmax) else name
        yield keras.Model(model.inputs, last.input, name=f"{model.name}_logits"), removed
        return
    if name in ("sigmoid", "softmax") and hasattr(last, "activation"):
        last.activation = keras.activations.linear
        try:
            yield model, name
        finally:
            last.activation = activation
        return
    yield model, "none"
