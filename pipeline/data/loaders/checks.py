"""Validation of loaded samples and labels, shared by every loader.

Bad data is refused here with a DataError that names where it came from, before it can
skew the int8 calibration or the clinical metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.errors import DataError


def check_labels(raw: np.ndarray, where: str) -> np.ndarray:
    """Integer class indices (N,) from labels of shape (N,) or (N, 1).

    Raises:
        DataError: labels are multi-column, not integers, not finite, or negative.
    """
    y = np.asarray(raw)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"Labels {where} must have shape (N,) or (N, 1) holding class indices; received "
            f"shape {y.shape}. One-hot or multi-label targets are not supported: store "
            "argmax class indices."
        )
    if y.size and y.dtype == np.bool_:
        y = y.astype(np.int64)
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if (
            not np.issubdtype(y.dtype, np.floating)
            or not np.all(np.isfinite(y))
            or not np.all(y == np.round(y))
        ):
            sample = y.ravel()[:5].tolist()
            raise DataError(
                f"Labels {where} must be integer class indices; received dtype {y.dtype} "
                f"with values such as {sample}. Store labels as 0, 1, ... (one per class)."
            )
    if y.size and y.min() < 0:
        raise DataError(f"Labels {where} must be class indices >= 0; received minimum {y.min()}.")
    return y.astype(np.int64)


def check_features(raw: np.ndarray, where: str) -> np.ndarray:
    """Numeric, finite samples with a sample axis and at least one feature axis.

    Raises:
        DataError: non-numeric dtype, too few axes, or NaN/Inf values.
    """
    x = np.asarray(raw)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.issubdtype(
        x.dtype, np.complexfloating
    ):
        raise DataError(f"Inputs {where} must be real numbers; received dtype {x.dtype}.")
    if x.ndim < 2:
        raise DataError(
            f"Inputs {where} must have a sample axis and at least one feature axis; "
            f"received shape {x.shape}."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))
        raise DataError(
            f"Inputs {where} contain {len(bad)} NaN or Inf value(s), the first in sample "
            f"{int(bad[0][0])}. Clean or impute them before building; calibration and "
            "evaluation need finite numbers."
        )
    return x


def encode_labels(values: Sequence[str], where: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Class indices from label text: integers as given, otherwise names sorted A-Z.

    Returns:
        The indices and, for names, the class names in index order (None for integers).

    Raises:
        DataError: a label is empty.
    """
    texts = [v.strip() for v in values]
    for i, text in enumerate(texts):
        if not text:
            raise DataError(f"Label {i + 1} {where} is empty; every sample needs a label.")
    try:
        numbers = [float(t) for t in texts]
    except ValueError:
        names = tuple(sorted(set(texts)))
        index = {name: i for i, name in enumerate(names)}
        return np.asarray([index[t] for t in texts], np.int64), names
    return check_labels(np.asarray(numbers, np.float64), where), None
