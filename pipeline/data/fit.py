"""The splits fitted to the model's input: channel axis and count, shapes checked."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pipeline.data.loaders import SPLIT_NAMES
from pipeline.data.splits import Splits
from pipeline.errors import DataError


def fit_to_model(splits: Splits, input_shape: tuple[int | None, ...], source: str) -> Splits:
    """Completes the preprocessing spec for the model: channel axis and count, and checks
    that every split (and the calibration data) then fits the model's input.

    Raises:
        DataError: the samples cannot be made to fit the model's input.
    """
    expected = tuple(input_shape[1:])
    channels = expected[-1] if len(expected) >= 2 else None
    spec = splits.preprocessing.with_geometry(sample_rank=len(expected), channels=channels)
    arrays = [(name, splits.split(name)[0]) for name in SPLIT_NAMES]
    if splits.x_calibration is not None:
        arrays.append(("calibration", splits.x_calibration))
    for name, x in arrays:
        where = source if name != "calibration" else (splits.calibration_source or source)
        sample = x.shape[1:]
        try:
            got = spec.geometry(x[:1]).shape[1:]
        except DataError as exc:
            raise DataError(
                f"Data '{where}' ({name}) has samples of shape {sample}; the model expects "
                f"{(None, *expected)}. {exc}"
            ) from None
        if len(got) != len(expected) or any(
            e is not None and e != g for e, g in zip(expected, got, strict=True)
        ):
            hint = (
                "Pass data whose samples match the model input (a channel axis is added "
                "and gray/RGB converted automatically)."
            )
            if (
                len(expected) == 3
                and len(got) == 3
                and got[:2] != expected[:2]
                and None not in expected[:2]
            ):
                hint = (
                    f"Pass --resize {expected[0]}x{expected[1]} to resize the images, or "
                    "pass images of the model's size."
                )
            raise DataError(
                f"Data '{where}' ({name}) has samples of shape {sample}; the model expects "
                f"{(None, *expected)}. {hint}"
            )
    width = got[-1] if got else 1
    for label, values in (("scale/std", spec.scale), ("offset/mean", spec.offset)):
        size = np.size(values)
        if np.ndim(values) == 1 and size not in (1, width):
            raise DataError(
                f"The preprocessing {label} has {size} values, but the model input's last "
                f"axis has {width}; pass one value, or one per channel/feature."
            )
    return replace(splits, preprocessing=spec)
