"""The checked-in .tflite fixtures (made by make_models.py) and their names."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"

# Models with one input and one output, by what they exercise.
RUNNABLE_MODELS = ("dense_float32", "dense_int8", "conv_int8", "conv1d_float32")


def model_path(name: str) -> Path:
    """Path of a checked-in model by stem, e.g. ``model_path("dense_int8")``."""
    return MODELS_DIR / f"{name}.tflite"
