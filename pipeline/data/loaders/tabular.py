"""Tabular CSV for feature-vector models: a header row, numeric features, a label column."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from pipeline.data.loaders import LoadedArrays
from pipeline.data.loaders.checks import encode_labels
from pipeline.errors import DataError


def load_csv(
    path: Path,
    *,
    label_column: str = "label",
    labelled: bool = True,
    exclude: tuple[str, ...] = (),
) -> LoadedArrays:
    """Reads a CSV whose columns other than `label_column` (and `exclude`: subgroup
    attributes, never features) are the features, in order.

    Labels are integer class indices, or class names (sorted A-Z into indices). For
    calibration data (`labelled=False`) the label column is optional and ignored.

    Raises:
        DataError: missing file or label column, a non-numeric or non-finite feature value
            (named by line and column), no rows.
    """
    if not path.is_file():
        raise DataError(f"Data file '{path}' does not exist. Pass an existing CSV with --data.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Data file '{path}' could not be read as CSV: {exc}.") from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise DataError(f"Data file '{path}' has no data rows below its header.")
    header = [h.strip() for h in rows[0]]
    if label_column not in header and labelled:
        raise DataError(
            f"Data file '{path}' has no label column '{label_column}'; its columns are "
            f"{header}. Name the label column with --label-column NAME."
        )
    label_at = header.index(label_column) if label_column in header else None
    feature_at = [i for i in range(len(header)) if i != label_at and header[i] not in exclude]
    if not feature_at:
        raise DataError(f"Data file '{path}' has no feature columns besides '{label_column}'.")
    x = np.empty((len(rows) - 1, len(feature_at)), np.float32)
    texts = []
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(header):
            raise DataError(
                f"Data file '{path}' line {line} has {len(row)} fields; the header has "
                f"{len(header)}."
            )
        for j, i in enumerate(feature_at):
            cell = row[i].strip()
            try:
                value = float(cell) if cell else math.nan
            except ValueError:
                raise DataError(
                    f"Data file '{path}' line {line}, column '{header[i]}' holds '{cell}', "
                    "not a number. Features must be numeric; encode categories as numbers "
                    "before building."
                ) from None
            if not math.isfinite(value):
                raise DataError(
                    f"Data file '{path}' line {line}, column '{header[i]}' is "
                    f"{'empty' if not cell else cell}: features must be finite numbers. "
                    "Impute or drop the row."
                )
            x[r, j] = value
        if label_at is not None:
            texts.append(row[label_at])
    y, class_names = (
        encode_labels(texts, f"in column '{label_column}' of '{path}'")
        if labelled
        else (None, None)
    )
    return LoadedArrays(
        {"all": (x, y)},
        str(path),
        class_names=class_names,
        details={
            "format": "csv",
            "features": [header[i] for i in feature_at],
            "label_column": label_column if labelled else None,
        },
    )
