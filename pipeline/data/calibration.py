"""`--calibration-data`: unlabelled samples for the int8 representative dataset."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.sources import read_source
from pipeline.data.splits import Splits
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pathlib import Path

    from pipeline.config import DataConfig
    from pipeline.data.loaders.dicom import Window


def with_calibration(
    splits: Splits,
    calibration: Path,
    config: DataConfig,
    input_shape: tuple[int | None, ...] | None,
    window: Window | None,
) -> Splits:
    """The splits with `--calibration-data`'s samples as the int8 representative dataset.

    Raises:
        DataError: the calibration source is unreadable or holds no samples.
    """
    cal = read_source(
        calibration,
        labelled=False,
        label_column=config.label_column,
        labels=None,
        resize=config.resize,
        input_shape=input_shape,
        window=window,
    )
    x_cal = np.concatenate([x for x, _ in cal.parts.values()])
    if len(x_cal) == 0:
        raise DataError(f"Calibration data '{calibration}' holds no samples.")
    spec = splits.preprocessing
    if cal.image_size is not None and spec.resize is None:
        spec = spec.with_geometry(resize=cal.image_size)
    return replace(
        splits,
        x_calibration=x_cal,
        calibration_source=cal.source,
        preprocessing=spec,
        warnings=splits.warnings + cal.warnings,
        details={**splits.details, "calibration": cal.details},
    )
