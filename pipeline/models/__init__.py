"""Loading the user's Keras model and training the embedded reference classifier.

The `models` layer sits just above `config` and below `data`: it imports nothing of the
project but `pipeline.errors`. The Keras graph walk (`pipeline.models.graph`) and nested-model
flattening (`pipeline.models.flatten`) live here so that both the data stage (the host
front) and the prune stage can use them.
"""

from __future__ import annotations

import enum
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from pipeline.errors import DataError, ModelError

if TYPE_CHECKING:
    import keras


class LabelledData(Protocol):
    """What training and label checks need of the data stage's splits
    (`pipeline.data.splits.Splits` is one): passed in, so `models` need not import `data`."""

    @property
    def x_train(self) -> np.ndarray: ...
    @property
    def y_train(self) -> np.ndarray: ...
    @property
    def y_val(self) -> np.ndarray: ...
    @property
    def source(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    def model_inputs(self, name: str) -> np.ndarray: ...


class OutputKind(str, enum.Enum):
    """What the model's single output holds."""

    SIGMOID = "sigmoid"  # one unit, probability of class 1
    SOFTMAX = "softmax"  # one unit per class, probabilities
    LOGITS = "logits"  # raw scores: one unit (sigmoid on the host) or one per class


def _quiet_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require_exists(path: Path) -> None:
    """Raises ModelError when the model path is missing: cheap, so it runs before --out."""
    if not path.exists():
        raise ModelError(
            f"Model '{path}' does not exist. Pass a Keras model file (.keras, .h5) or a "
            "SavedModel directory with --model."
        )


def load_model(path: Path, unsafe: bool = False) -> keras.Model:
    """Loads a Keras 3 model file (.keras, .h5) or a SavedModel directory.

    Args:
        path: the model file or directory.
        unsafe: allow Lambda layers (their Python code runs at load time). Only for files
            from a trusted source.

    Raises:
        ModelError: the path is missing, unreadable, or not a single-input, single-output
            model.
    """
    _quiet_tensorflow()
    import keras

    require_exists(path)
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(
                f"Model path '{path}' is a directory without saved_model.pb; expected a "
                "Keras file (.keras, .h5) or a SavedModel directory."
            )
        model = _load_saved_model(path)
    elif path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(
            f"Model '{path}' has suffix '{path.suffix}'; expected .keras, .h5 or a SavedModel "
            "directory."
        )
    else:
        try:
            model = keras.models.load_model(path, compile=True, safe_mode=not unsafe)
        except ValueError as exc:
            if "lambda" in str(exc).lower() or "safe_mode" in str(exc):
                raise ModelError(
                    f"Model '{path}' contains a Lambda layer, refused: loading it runs Python "
                    "code stored in the file, which can do anything. If you trust the file's "
                    "source, pass --unsafe-load; better, replace the Lambda with a registered "
                    "custom layer."
                ) from None
            raise ModelError(f"Model '{path}' could not be loaded: {exc}") from None
        except (OSError, zipfile.BadZipFile, EOFError, KeyError, TypeError) as exc:
            raise ModelError(
                f"Model '{path}' could not be read ({type(exc).__name__}: {exc}). Check that "
                "the file is complete and was saved with model.save()."
            ) from None
    check_single_io(model, str(path))
    return model


def _load_saved_model(path: Path) -> keras.Model:
    import keras

    try:
        layer = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
    except Exception as exc:  # noqa: BLE001 - TF raises many types for a bad SavedModel
        raise ModelError(f"SavedModel '{path}' could not be loaded: {exc}") from None
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    sig = loaded.signatures["serving_default"]
    specs = list(sig.structured_input_signature[1].values())
    if len(specs) != 1:
        raise ModelError(f"SavedModel '{path}' has {len(specs)} inputs; one input is supported.")
    inputs = keras.Input(shape=tuple(specs[0].shape[1:]), dtype=specs[0].dtype.name)
    outputs = layer(inputs)
    if isinstance(outputs, dict):
        if len(outputs) != 1:
            raise ModelError(
                f"SavedModel '{path}' has {len(outputs)} outputs; one output is supported."
            )
        outputs = next(iter(outputs.values()))
    return keras.Model(inputs, outputs)


def check_single_io(model: keras.Model, source: str) -> None:
    """Raises ModelError unless the model has exactly one input and one output."""
    n_in, n_out = len(model.inputs), len(model.outputs)
    if n_in != 1 or n_out != 1:
        raise ModelError(
            f"Model '{source}' has {n_in} inputs and {n_out} outputs; bedside-lite supports "
            "models with exactly one input and one output (a classifier on one image or "
            "feature vector)."
        )


def output_kind(model: keras.Model) -> OutputKind:
    """Infers whether the model ends in a sigmoid, a softmax, or raw logits."""
    import keras

    layer = model.layers[-1]
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "") if activation is not None else ""
    if isinstance(layer, keras.layers.Softmax):
        name = "softmax"
    units = int(model.outputs[0].shape[-1])
    if name == "sigmoid" and units == 1:
        return OutputKind.SIGMOID
    if name == "softmax":
        return OutputKind.SOFTMAX
    return OutputKind.LOGITS


def check_labels(model: keras.Model, splits: LabelledData) -> None:
    """Raises DataError when the labels do not fit the model's output."""
    units = int(model.outputs[0].shape[-1])
    n_classes = 2 if units == 1 else units
    if splits.num_classes > n_classes:
        raise DataError(
            f"Labels of '{splits.source}' go up to class {splits.num_classes - 1}, but the model "
            f"has {units} output unit(s), i.e. {n_classes} classes. Labels must be in "
            f"[0, {n_classes - 1}]."
        )


def compile_like(target: keras.Model, source: keras.Model) -> None:
    """Compiles `target` as `source` was: the same loss and a fresh optimizer of the same
    class and config (its learning rate or schedule, restarted at step 0). A `source`
    compiled without a loss leaves `target` as it is."""
    if not getattr(source, "compiled", False) or getattr(source, "loss", None) is None:
        return
    optimizer = getattr(source, "optimizer", None)
    fresh = type(optimizer).from_config(optimizer.get_config()) if optimizer else "adam"
    target.compile(optimizer=fresh, loss=source.loss)


def train_reference_model(splits: LabelledData, seed: int = 0) -> keras.Model:
    """Trains the embedded reference classifier: a small MLP on standardised features."""
    _quiet_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    n_features = splits.x_train.shape[1]
    model = keras.Sequential(
        [
            keras.Input(shape=(n_features,), name="features"),
            keras.layers.Dense(32, activation="relu", name="dense_1"),
            keras.layers.Dense(16, activation="relu", name="dense_2"),
            keras.layers.Dense(1, activation="sigmoid", name="benign"),
        ],
        name="wdbc_mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        splits.model_inputs("train"),
        splits.y_train.astype(np.float32),
        validation_data=(splits.model_inputs("val"), splits.y_val.astype(np.float32)),
        epochs=60,
        batch_size=32,
        shuffle=True,
        verbose=0,
    )
    return model
