"""Loading medical datasets into train/val/test splits, and the preprocessing spec.

One `Preprocessing` (x * scale + offset, per feature or scalar) is applied to every split:
calibration, evaluation and the device see the same numbers. It is recorded with the model
as `preprocessing.json` so that a device can reproduce it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import DataError

MEDMNIST_KEYS = ("train_images", "train_labels", "val_images", "val_labels", "test_images",
                 "test_labels")
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Preprocessing:
    """Affine host-side preprocessing: model_input = raw * scale + offset.

    `scale` and `offset` are scalars or per-feature vectors (broadcast over the last axis).
    """

    scale: np.ndarray
    offset: np.ndarray
    description: str = "identity"

    @classmethod
    def identity(cls) -> Preprocessing:
        return cls(np.float32(1.0), np.float32(0.0))

    @classmethod
    def affine(cls, scale: float | None, offset: float | None) -> Preprocessing:
        scale = 1.0 if scale is None else scale
        offset = 0.0 if offset is None else offset
        desc = "identity" if (scale, offset) == (1.0, 0.0) else "affine"
        return cls(np.float32(scale), np.float32(offset), desc)

    @classmethod
    def standardize(cls, x_train: np.ndarray) -> Preprocessing:
        """Per-feature (x - mean) / std, fitted on the training split only."""
        mean = x_train.mean(axis=0, dtype=np.float64)
        std = x_train.std(axis=0, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
        return cls((1.0 / std).astype(np.float32), (-mean / std).astype(np.float32),
                   "standardize")

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) * self.scale + self.offset).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.description,
            "formula": "model_input = raw * scale + offset",
            "scale": np.asarray(self.scale, np.float64).tolist(),
            "offset": np.asarray(self.offset, np.float64).tolist(),
            "dtype": "float32",
        }


@dataclass(frozen=True)
class Splits:
    """Raw (not yet preprocessed) data split three ways, with integer labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    preprocessing: Preprocessing
    positive_class: int = 1

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max(), self.y_test.max())) + 1

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def model_inputs(self, name: str) -> np.ndarray:
        """The split's inputs after preprocessing, as the model and the .tflite receive them."""
        return self.preprocessing.apply(self.split(name)[0])

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "num_classes": self.num_classes,
            "positive_class": self.positive_class,
            "splits": {
                name: {
                    "samples": int(len(self.split(name)[1])),
                    "shape": list(self.split(name)[0].shape[1:]),
                    "label_counts": np.bincount(self.split(name)[1],
                                                minlength=self.num_classes).tolist(),
                }
                for name in SPLIT_NAMES
            },
            "preprocessing": self.preprocessing.to_json(),
        }


def stratified_split(x: np.ndarray, y: np.ndarray, seed: int, source: str
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified 60/20/20 split."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 5 else None
    try:
        x_tr, x_rest, y_tr, y_rest = train_test_split(
            x, y, test_size=0.4, random_state=seed, stratify=stratify)
        x_va, x_te, y_va, y_te = train_test_split(
            x_rest, y_rest, test_size=0.5, random_state=seed,
            stratify=y_rest if stratify is not None else None)
    except ValueError as exc:
        raise DataError(
            f"Data '{source}' with {len(y)} samples cannot be split into train/val/test: "
            f"{exc}. Provide more samples or explicit train_/val_/test_ arrays."
        ) from None
    return {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}


def _labels(raw: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(raw)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"Labels {where} must have shape (N,) or (N, 1) holding class indices; received "
            f"shape {y.shape}. One-hot or multi-label targets are not supported: store "
            "argmax class indices."
        )
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)) or \
                not np.all(y == np.round(y)):
            raise DataError(
                f"Labels {where} must be integer class indices; received dtype {y.dtype} "
                f"with values such as {y.ravel()[:5].tolist()}."
            )
    if y.size and y.min() < 0:
        raise DataError(
            f"Labels {where} must be class indices >= 0; received minimum {y.min()}."
        )
    return y.astype(np.int64)


def _features(raw: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(raw)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise DataError(f"Inputs {where} must be numeric; received dtype {x.dtype}.")
    if x.ndim < 2:
        raise DataError(
            f"Inputs {where} must have a sample axis and at least one feature axis; "
            f"received shape {x.shape}."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(
            f"Inputs {where} contain {bad} NaN or Inf values. Clean or impute them before "
            "building; calibration and evaluation need finite numbers."
        )
    return x


def load_npz(path: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads an .npz in MedMNIST layout or with `x`/`y` arrays (split here).

    Raises:
        DataError: missing, unreadable, pickled or malformed file.
    """
    if not path.exists():
        raise DataError(f"Data file '{path}' does not exist. Pass an existing .npz with --data.")
    if path.is_dir():
        raise DataError(
            f"Data path '{path}' is a directory; expected an .npz file with MedMNIST keys "
            f"({', '.join(MEDMNIST_KEYS)}) or 'x' and 'y' arrays."
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"Data file '{path}' holds pickled Python objects, which are refused because "
                "loading them can run code. Save plain numeric arrays (np.savez with numpy "
                "arrays of numbers)."
            ) from None
        raise DataError(f"Data file '{path}' is not a readable .npz archive: {exc}.") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"Data file '{path}' is not a readable .npz archive ({type(exc).__name__}: {exc}). "
            "Check that the file is complete and was written by numpy.savez."
        ) from None

    if all(k in arrays for k in MEDMNIST_KEYS):
        splits = {}
        for name in SPLIT_NAMES:
            where = f"'{name}_labels' in '{path}'"
            x = _features(arrays[f"{name}_images"], f"'{name}_images' in '{path}'")
            y = _labels(arrays[f"{name}_labels"], where)
            if len(x) != len(y):
                raise DataError(
                    f"'{name}_images' has {len(x)} samples but '{name}_labels' has {len(y)} in "
                    f"'{path}'; they must match."
                )
            splits[name] = (x, y)
    elif "x" in arrays and "y" in arrays:
        x = _features(arrays["x"], f"'x' in '{path}'")
        y = _labels(arrays["y"], f"'y' in '{path}'")
        if len(x) != len(y):
            raise DataError(f"'x' has {len(x)} samples but 'y' has {len(y)} in '{path}'.")
        if len(y) == 0:
            raise DataError(f"Data file '{path}' holds no samples ('x' is empty).")
        splits = stratified_split(x, y, seed, str(path))
    else:
        raise DataError(
            f"Data file '{path}' has arrays {sorted(arrays)}; expected MedMNIST keys "
            f"({', '.join(MEDMNIST_KEYS)}) or 'x' and 'y'. Rename the arrays accordingly."
        )
    for name, (_, y) in splits.items():
        if len(y) == 0:
            raise DataError(
                f"The {name} split of '{path}' is empty; every split needs samples."
            )
    return splits


def load_wdbc(seed: int = 0) -> Splits:
    """The Wisconsin Diagnostic Breast Cancer data that scikit-learn ships (offline).

    569 cases, 30 features spanning 0.05 to 2500; label 0 = malignant, 1 = benign. The
    features are standardised on the host because an int8 input has one scale per tensor:
    unstandardised, the small features would quantise to zero.
    """
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    splits = stratified_split(ds.data.astype(np.float32), ds.target.astype(np.int64), seed,
                              "sklearn:breast_cancer")
    return Splits(
        *splits["train"], *splits["val"], *splits["test"],
        source="sklearn:breast_cancer (Wisconsin Diagnostic Breast Cancer)",
        preprocessing=Preprocessing.standardize(splits["train"][0]),
        positive_class=0,  # malignant
    )


def load(path: Path | None, *, scale: float | None = None, offset: float | None = None,
         seed: int = 0) -> Splits:
    """Loads the data named by `--data` (None: the embedded WDBC default)."""
    if path is None:
        return load_wdbc(seed)
    splits = load_npz(path, seed)
    return Splits(
        *splits["train"], *splits["val"], *splits["test"],
        source=str(path),
        preprocessing=Preprocessing.affine(scale, offset),
    )


def fit_to_model(splits: Splits, input_shape: tuple[int | None, ...], source: str) -> Splits:
    """Adds a channel axis (or repeats a gray channel) where the model expects it.

    Raises:
        DataError: the data's sample shape cannot be made to fit the model's input.
    """
    expected = tuple(input_shape[1:])
    sample = splits.x_train.shape[1:]

    def adapt(x: np.ndarray) -> np.ndarray:
        if len(expected) == len(sample) + 1 and expected[-1] in (1, 3):
            x = x[..., None]
            if expected[-1] == 3:
                x = np.repeat(x, 3, axis=-1)
        elif len(expected) == len(sample) and expected[-1] == 3 and sample[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        return x

    adapted = {n: adapt(splits.split(n)[0]) for n in SPLIT_NAMES}
    got = adapted["train"].shape[1:]
    if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise DataError(
            f"Data '{source}' has samples of shape {sample}; the model expects "
            f"{(None, *expected)}. Pass data whose samples match the model input (a channel "
            "axis is added automatically for single-channel images)."
        )
    return Splits(
        adapted["train"], splits.y_train, adapted["val"], splits.y_val, adapted["test"],
        splits.y_test, splits.source, splits.preprocessing, splits.positive_class,
    )


def write_preprocessing(path: Path, splits: Splits, input_shape: tuple[int | None, ...],
                        postprocess: str) -> None:
    """Writes `preprocessing.json`: what a device must do before and after the model."""
    doc = {
        "schema_version": 1,
        "input_shape": [None if d is None else int(d) for d in input_shape],
        "layout": "channels_last",
        "preprocessing": splits.preprocessing.to_json(),
        "postprocess": postprocess,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
