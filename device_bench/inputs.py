"""Loads input arrays from ``.npy``/``.npz`` files and fits them to a model input.

Files hold real (float) values, already preprocessed by the host; integer models
get them quantized with the model input's own scale and zero point. An array
whose dtype already is the model's integer input dtype is taken as quantized.
Pickles are never loaded: these files may come from anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device_bench.errors import InputDataError
from device_bench.tensors import Quantization, quantize

INPUT_SUFFIXES = (".npy", ".npz")
NPZ_KEY = "x"


def load_input_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Loads the input array of a ``.npy`` file or a ``.npz`` archive.

    Args:
        path: A ``.npy`` file, or a ``.npz`` archive whose array ``x`` (else its
            first array) is used.

    Returns:
        The array.

    Raises:
        InputDataError: The file is missing, of another format, empty, or holds
            pickled objects.
    """
    file = Path(path)
    if file.suffix.lower() not in INPUT_SUFFIXES:
        raise InputDataError(
            f"Input '{file}' has suffix '{file.suffix}'; expected .npy or .npz. "
            "Save the preprocessed samples with numpy.save or numpy.savez."
        )
    if not file.is_file():
        raise InputDataError(f"Input '{file}' does not exist or is not a file; check the path.")
    try:
        loaded = np.load(file, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                if not loaded.files:
                    raise InputDataError(
                        f"Input '{file}' is an empty .npz archive; expected an array "
                        f"named '{NPZ_KEY}'. Save it with numpy.savez(path, {NPZ_KEY}=samples)."
                    )
                key = NPZ_KEY if NPZ_KEY in loaded.files else loaded.files[0]
                array = loaded[key]
        else:
            array = loaded
    except InputDataError:
        raise
    except Exception as error:  # numpy raises ValueError/OSError/zipfile errors
        raise InputDataError(
            f"Input '{file}' cannot be read as a numpy array ({type(error).__name__}: "
            f"{error}). Save numeric arrays with numpy.save/numpy.savez (no pickled objects)."
        ) from error
    if array.dtype.kind not in "biuf":
        raise InputDataError(
            f"Input '{file}' holds dtype {array.dtype}; expected numeric samples "
            "(float32 preprocessed values)."
        )
    return np.asarray(array)


def fit_samples(
    samples: np.ndarray,
    sample_shape: Sequence[int],
    *,
    source: str,
    model: str,
) -> np.ndarray:
    """Checks that ``samples`` is a batch of samples of ``sample_shape``.

    Args:
        samples: Array shaped ``(N, *sample_shape)``, or ``sample_shape`` for a
            single sample.
        sample_shape: Model input shape without the batch dimension; ``-1`` or
            ``None`` entries accept any size.
        source: Where the samples came from, for messages (a file name).
        model: Model path, for messages.

    Returns:
        The samples with a leading batch axis.

    Raises:
        InputDataError: The shape does not fit, or there are no samples.
    """
    expected = tuple(sample_shape)
    array = np.asarray(samples)
    if array.ndim == len(expected):
        array = array[np.newaxis]
    shown = "(N, " + ", ".join("?" if d in (-1, None) else str(d) for d in expected) + ")"
    fits = array.ndim == len(expected) + 1 and all(
        want in (-1, None) or want == got
        for want, got in zip(expected, array.shape[1:], strict=True)
    )
    if not fits:
        raise InputDataError(
            f"Input {source} has shape {tuple(array.shape)}; model '{model}' expects "
            f"{shown}. Pass samples preprocessed to the model's input shape."
        )
    if array.shape[0] == 0:
        raise InputDataError(f"Input {source} holds no samples (shape {tuple(array.shape)}).")
    return array


def to_model_dtype(samples: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Converts samples to the model input's dtype.

    Args:
        samples: Real values, or integers already in the input's integer dtype.
        quantization: The model input's quantization.

    Returns:
        Array in the input's dtype: quantized with the input's scale and zero
        point when needed, passed through when already of that integer dtype.
    """
    if quantization.is_quantized and samples.dtype == np.dtype(quantization.dtype):
        return samples
    return quantize(samples, quantization)
