"""Regenerates the tiny .tflite fixtures that the device_bench tests run on.

Run from the repository root with the full environment (TensorFlow + Keras):

    /work/venv/bin/python tests/device_bench/make_models.py [NAME.tflite ...]

The tests never import this script: the files it writes are checked in, so the
device_bench tests run on a machine without TensorFlow, as the device does.
Seeds are fixed so that regenerating gives the same weights.
"""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

MODELS_DIR = pathlib.Path(__file__).resolve().parent / "models"
SEED = 1234


def _representative_dataset(shape: tuple[int, ...], samples: int = 64):
    """Returns a calibration generator of deterministic standard-normal samples."""
    rng = np.random.default_rng(SEED)

    def generate():
        for _ in range(samples):
            yield [rng.standard_normal((1, *shape)).astype(np.float32)]

    return generate


def _convert(
    model: keras.Model,
    *,
    full_integer_shape: tuple[int, ...] | None = None,
    sparse: bool = False,
) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if full_integer_shape is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if sparse:
            converter.optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
        converter.representative_dataset = _representative_dataset(full_integer_shape)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def dense_float32() -> bytes:
    """A 16 -> 8 -> 4 MLP in float32: the smallest useful model."""
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    return _convert(model)


def dense_int8() -> bytes:
    """The same MLP shape, fully int8 (int8 input and output), calibrated."""
    keras.utils.set_random_seed(SEED + 1)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    return _convert(model, full_integer_shape=(16,))


def conv_int8() -> bytes:
    """A tiny Conv2D classifier on 12x12x1 images, fully int8."""
    keras.utils.set_random_seed(SEED + 2)
    model = keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    return _convert(model, full_integer_shape=(12, 12, 1))


def conv_float32() -> bytes:
    """A tiny float32 Conv1D model on 20-step, 2-channel signals (ECG-like)."""
    keras.utils.set_random_seed(SEED + 3)
    model = keras.Sequential(
        [
            keras.Input((20, 2)),
            keras.layers.Conv1D(4, 5, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2),
        ]
    )
    return _convert(model)


def sparse_int8() -> bytes:
    """A block-sparse int8 MLP whose weights the converter stores sparse.

    ai-edge-litert's default XNNPACK delegate refuses it at allocate time
    ("failed to delegate FULLY_CONNECTED"), which device_bench must survive and
    report, retrying without default delegates.
    """
    keras.utils.set_random_seed(SEED + 5)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        kernel, bias = layer.get_weights()
        # Keep 10% of 1x4 blocks: the converter only densifies what is sparse enough.
        blocks = rng.random((kernel.shape[0], kernel.shape[1] // 4)) < 0.1
        layer.set_weights([kernel * np.repeat(blocks, 4, axis=1), bias])
    return _convert(model, full_integer_shape=(64,), sparse=True)


def two_outputs() -> bytes:
    """A model with two outputs, which device_bench must reject with a clear error."""
    keras.utils.set_random_seed(SEED + 4)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(hidden), keras.layers.Dense(1)(hidden)])
    return _convert(model)


def dominant_conv_int8() -> bytes:
    """An int8 model with float edges where one op dominates the time: a 3x3 Conv2D of
    16 -> 32 channels on 32x32 (4.7M MACs) beside a mean, a 32 -> 2 Dense and the
    QUANTIZE/DEQUANTIZE at the edges (each well under 1% of the conv's MACs). The per-op
    profile must rank the conv first."""
    keras.utils.set_random_seed(SEED + 6)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 16)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset((32, 32, 16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _resize_model() -> keras.Model:
    keras.utils.set_random_seed(SEED + 7)
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Rescaling(1 / 127.5, -1),
            keras.layers.Resizing(40, 40),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def resize_float32() -> bytes:
    """The float32 file resize_int8 is quantized from (same weights, same tensor names)."""
    return _convert(_resize_model())


def resize_int8() -> bytes:
    """A full-int8 model with a bilinear Resizing front inside (as in a MobileNetV2 fed
    28x28 scans): XNNPACK's int8 RESIZE_BILINEAR rounds differently from LiteRT's
    reference kernel (measured up to 3 steps on ai-edge-litert 2.3), which the per-op
    comparison must name as the first op where the runtimes part ways."""
    model = _resize_model()
    rng = np.random.default_rng(SEED)

    def pixels():
        for _ in range(64):
            yield [rng.uniform(0, 255, (1, 12, 12, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = pixels
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


MODELS = {
    "dense_float32.tflite": dense_float32,
    "dense_int8.tflite": dense_int8,
    "conv_int8.tflite": conv_int8,
    "conv1d_float32.tflite": conv_float32,
    "sparse_int8.tflite": sparse_int8,
    "two_outputs.tflite": two_outputs,
    "dominant_conv_int8.tflite": dominant_conv_int8,
    "resize_int8.tflite": resize_int8,
    "resize_float32.tflite": resize_float32,
}


def main(names: list[str]) -> None:
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        if names and name not in names:
            continue
        content = build()
        (MODELS_DIR / name).write_bytes(content)
        print(f"{name}: {len(content)} bytes")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
