"""Loaders that turn what a user passes with `--data` into raw arrays.

Each module reads one kind of source (`npz`, `medmnist`, `folder` with `images` and `dicom`
decoders, `tabular` CSV) and returns `LoadedArrays`; `pipeline.data.dataset` splits them and
attaches the preprocessing spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class LoadedArrays:
    """Raw samples from one source, either already split or not yet.

    Attributes:
        parts: {"train", "val", "test"} -> (x, y), or {"all": (x, y)} to be split; y is None
            for unlabelled data (calibration only).
        source: what the user passed, for messages and the report.
        class_names: names of the class indices, when the source has them.
        groups: for "all", the file each sample came from (frames of one file stay in one
            split); None when every sample is its own file.
        decode: how files were decoded into arrays, for the preprocessing spec.
        details: provenance for the report (checksums, file counts, ...).
        warnings: problems that did not stop loading, for the report.
        positive_class: the clinically positive class when the dataset defines one.
        image_size: (height, width) the decoder resized images to, if it did.
        sample_files: for a folder, each sample's file relative to it (subgroup lookup).
        attributes: for arrays handed over in memory, their subgroup attributes by part.
    """

    parts: dict[str, tuple[np.ndarray, np.ndarray | None]]
    source: str
    class_names: tuple[str, ...] | None = None
    groups: np.ndarray | None = None
    decode: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    positive_class: int | None = None
    image_size: tuple[int, int] | None = None
    sample_files: tuple[str, ...] | None = None
    # per part ("all" or a split), subgroup attributes handed over in memory (Python API)
    attributes: dict[str, dict[str, np.ndarray]] | None = None

    @property
    def labelled(self) -> bool:
        return all(y is not None for _, y in self.parts.values())
