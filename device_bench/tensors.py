"""Tensor quantization, dequantization and deterministic random inputs.

Quantization follows TFLite's affine scheme ``real = scale * (q - zero_point)``
with a single (per-tensor) scale and zero point, which is what model inputs and
outputs use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.random  # noqa: F401 - imported up front, see random_input

DEFAULT_SEED = 0


@dataclass(frozen=True)
class Quantization:
    """Dtype and affine quantization of one tensor.

    Attributes:
        dtype: numpy dtype name, e.g. ``"int8"`` or ``"float32"``.
        scale: Scale, or ``None`` when the tensor is not quantized.
        zero_point: Zero point, or ``None`` when the tensor is not quantized.
    """

    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    @property
    def is_quantized(self) -> bool:
        """Whether values are integers standing for ``scale * (q - zero_point)``."""
        return self.scale is not None and np.issubdtype(np.dtype(self.dtype), np.integer)

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form used in reports."""
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}


def quantization_of(detail: Mapping[str, Any]) -> Quantization:
    """Reads the quantization of a tensor from an interpreter's tensor details.

    Args:
        detail: One entry of ``get_input_details()``/``get_output_details()``.

    Returns:
        The tensor's quantization; a zero scale (TFLite's "not quantized")
        gives ``scale=None``.
    """
    dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if not scale:
        return Quantization(dtype)
    return Quantization(dtype, float(scale), int(zero_point))


def _round_half_away_from_zero(values: np.ndarray) -> np.ndarray:
    # TFLite's QUANTIZE kernel uses std::round (half away from zero); numpy's
    # round is half-to-even. Matching the kernel keeps host-side quantization
    # identical to a model that quantizes in-graph.
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def quantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Converts real values to a tensor's dtype, quantizing integer tensors.

    Args:
        values: Real-valued array.
        quantization: The destination tensor's quantization.

    Returns:
        Array of ``quantization.dtype``; for quantized tensors
        ``round(values / scale) + zero_point`` clipped to the dtype's range.
    """
    dtype = np.dtype(quantization.dtype)
    scale, zero_point = quantization.scale, quantization.zero_point
    if not quantization.is_quantized or scale is None or zero_point is None:
        return np.asarray(values).astype(dtype)
    scaled = np.asarray(values, dtype=np.float64) / scale
    rounded = _round_half_away_from_zero(scaled) + zero_point
    limits = np.iinfo(dtype)
    return np.clip(rounded, limits.min, limits.max).astype(dtype)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Converts a tensor's values to real float32 values.

    Args:
        values: Array in the tensor's own dtype.
        quantization: The tensor's quantization.

    Returns:
        float32 array; ``scale * (values - zero_point)`` for quantized tensors.
    """
    array = np.asarray(values)
    scale, zero_point = quantization.scale, quantization.zero_point
    if not quantization.is_quantized or scale is None or zero_point is None:
        return array.astype(np.float32)
    real = (array.astype(np.float64) - zero_point) * scale
    return real.astype(np.float32)


def random_input(shape: Sequence[int], dtype: str, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Returns a deterministic random array that is valid for a tensor.

    Integer tensors get integers uniform over the whole dtype range, floats get
    standard-normal values (what normalized inputs look like), booleans fair
    coin flips. Never zeros: an all-zero input skips work in some kernels and
    hides broken quantization.

    ``numpy.random`` is imported with this module rather than lazily: it adds
    ~5 MiB of resident memory, which must land before the benchmark's first
    reading, not in the model's share.

    Args:
        shape: Tensor shape; every dimension must be positive.
        dtype: numpy dtype name.
        seed: Seed of the generator.

    Returns:
        Array of ``shape`` and ``dtype``.
    """
    rng = np.random.default_rng(seed)
    target = np.dtype(dtype)
    shape = tuple(int(d) for d in shape)
    if np.issubdtype(target, np.integer):
        limits = np.iinfo(target)
        return rng.integers(limits.min, limits.max, size=shape, dtype=target, endpoint=True)
    if target == np.bool_:
        return rng.integers(0, 1, size=shape, endpoint=True).astype(np.bool_)
    return rng.standard_normal(shape).astype(target)


def tensor_nbytes(shape: Sequence[int], dtype: Any) -> int:
    """Bytes of a dense tensor; 0 for dtypes without a fixed size (strings).

    Args:
        shape: Tensor shape.
        dtype: numpy dtype or type.

    Returns:
        ``prod(shape) * itemsize``.
    """
    target = np.dtype(dtype)
    if target.itemsize == 0 or target.kind in "OSU":
        return 0
    # math.prod, not np.prod: the benchmark calls this after its memory readings,
    # and numpy's reduction machinery would add ~1 MiB of pages to the model's peak.
    return math.prod(int(d) for d in shape) * target.itemsize
