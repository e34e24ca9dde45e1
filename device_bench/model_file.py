"""Checks that a path names a TFLite flatbuffer before any interpreter sees it.

The interpreter's own messages for a wrong file are cryptic ("Could not open",
"Model provided has model identifier 'PK'..."); these say what to pass instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from device_bench.errors import ModelFileError

TFLITE_SUFFIX = ".tflite"
# A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
_IDENTIFIER = b"TFL3"
_IDENTIFIER_SLICE = slice(4, 8)


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """Checks that ``path`` is an existing regular file named ``*.tflite``.

    Args:
        path: The model path given by the user.

    Returns:
        The path as a ``Path``.

    Raises:
        ModelFileError: The file is missing, a directory, or not ``.tflite``.
    """
    model = Path(path)
    if not model.exists():
        raise ModelFileError(
            f"Model '{model}' does not exist; expected a path to a .tflite file. "
            "Check the path (relative paths are resolved from the current directory)."
        )
    if not model.is_file():
        raise ModelFileError(
            f"Model '{model}' is a directory, not a file; expected a .tflite file. "
            "Pass the .tflite file inside it."
        )
    if model.suffix.lower() != TFLITE_SUFFIX:
        raise ModelFileError(
            f"Model '{model}' has suffix '{model.suffix}'; expected a {TFLITE_SUFFIX} "
            "flatbuffer. Convert Keras/SavedModel/ONNX models to TFLite first."
        )
    return model


def check_model_file(path: str | os.PathLike[str]) -> Path:
    """Checks the path like ``check_model_path`` and the flatbuffer identifier.

    Args:
        path: The model path given by the user.

    Returns:
        The path as a ``Path``.

    Raises:
        ModelFileError: The path is wrong or the file is not a TFLite flatbuffer.
    """
    model = check_model_path(path)
    with model.open("rb") as stream:
        head = stream.read(8)
    identifier = head[_IDENTIFIER_SLICE]
    if identifier != _IDENTIFIER:
        raise ModelFileError(
            f"Model '{model}' is not a TFLite flatbuffer: expected identifier "
            f"{_IDENTIFIER!r} at bytes 4-8, received {identifier!r} "
            f"({len(head)} bytes read). The file is truncated, corrupt or of another "
            "format; re-export it with the TFLite converter."
        )
    return model
