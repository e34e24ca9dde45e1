"""The data stage's record: decoded train/val/test splits with one preprocessing spec.

One `Preprocessing` is applied to every split and to the calibration samples, so the int8
scales, the evaluation and the device see the same numbers. How the splits are made:
`pipeline.data.dataset` (reading a `--data` source, `load`), `pipeline.data.stratify`
(splitting), `pipeline.data.calibration` (`--calibration-data`), `pipeline.data.fit`
(fitting to the model's input), `pipeline.data.provenance` (`preprocessing.json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.data.loaders import SPLIT_NAMES
from pipeline.data.preprocessing import Preprocessing, with_front

if TYPE_CHECKING:
    from pipeline.data.subgroups import SubgroupValues


@dataclass(frozen=True)
class Splits:
    """Decoded (not yet preprocessed) data split three ways, with integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    preprocessing: Preprocessing
    positive_class: int = 1
    class_names: tuple[str, ...] | None = None
    x_calibration: np.ndarray | None = None  # --calibration-data; None: the train split
    calibration_source: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    subgroups: SubgroupValues | None = None  # --subgroup values of the val/test cases

    @property
    def num_classes(self) -> int:
        seen = int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1
        return max(seen, len(self.class_names or ()))

    @property
    def positive_class_name(self) -> str | None:
        names = self.class_names or ()
        return names[self.positive_class] if self.positive_class < len(names) else None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def model_inputs(self, name: str) -> np.ndarray:
        """The split's inputs after preprocessing, as the model and the .tflite receive them."""
        return self.preprocessing.apply(self.split(name)[0])

    def calibration_inputs(self) -> np.ndarray:
        """Preprocessed candidates for the int8 representative dataset: the train split, or
        the `--calibration-data` samples when given."""
        if self.x_calibration is None:
            return self.model_inputs("train")
        return self.preprocessing.apply(self.x_calibration)

    @property
    def calibration_labels(self) -> np.ndarray:
        """Labels of `calibration_inputs()` for stratified sampling; all 0 for
        `--calibration-data`, whose labels are not used."""
        if self.x_calibration is None:
            return self.y_train
        return np.zeros(len(self.x_calibration), np.int64)

    def calibration_label_counts(self, idx: np.ndarray) -> list[int] | None:
        """Per-class counts of the chosen calibration samples; None when unlabelled."""
        if self.x_calibration is not None:
            return None
        return np.bincount(self.y_train[idx], minlength=self.num_classes).tolist()

    def summary(self) -> dict[str, Any]:
        probe = self.preprocessing.apply(self.x_train[:1])
        return with_front(
            self.preprocessing,
            {
                "source": self.source,
                "num_classes": self.num_classes,
                "class_names": None if self.class_names is None else list(self.class_names),
                "positive_class": self.positive_class,
                "positive_class_name": self.positive_class_name,
                "input_shape": list(probe.shape[1:]),
                "splits": {
                    name: {
                        "samples": int(len(self.split(name)[1])),
                        "shape": list(self.split(name)[0].shape[1:]),
                        "label_counts": np.bincount(
                            self.split(name)[1], minlength=self.num_classes
                        ).tolist(),
                    }
                    for name in SPLIT_NAMES
                },
                "calibration": {
                    "source": self.calibration_source or "train split",
                    "samples": int(
                        len(self.x_train if self.x_calibration is None else self.x_calibration)
                    ),
                },
                "details": self.details,
                "warnings": list(self.warnings),
                "preprocessing": self.preprocessing.to_json(),
            },
        )
