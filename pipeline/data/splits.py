"""Medical data in: the `--data` source read into train/val/test splits with one
preprocessing spec.

Sources (see `pipeline.data.loaders`): an .npz (MedMNIST layout or `x`/`y`), `medmnist:NAME[@SIZE]`
(downloaded once into the Keras cache), a folder of PNG/JPEG or DICOM files (class
subfolders or a label CSV), a tabular CSV, or the embedded WDBC data when `--data` is not
given. `--calibration-data` optionally adds unlabelled samples for the int8 calibration
(the representative dataset) in place of the train split.

One `Preprocessing` is applied to every split and to the calibration samples, so the int8
scales, the evaluation and the device see the same numbers; it is written beside the model
as `preprocessing.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.data.loaders import SPLIT_NAMES, Loaded
from pipeline.data.loaders.npz import MEDMNIST_KEYS
from pipeline.data.preprocessing import Preprocessing
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pipeline.config import DataConfig
    from pipeline.data.loaders.dicom import Window
    from pipeline.data.subgroups import SubgroupValues

__all__ = [
    "MEDMNIST_KEYS",
    "SPLIT_NAMES",
    "Preprocessing",
    "Splits",
    "fit_to_model",
    "from_config",
    "load",
    "write_preprocessing",
]


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
        return _with_front(
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


def _with_front(spec: Preprocessing, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` and, when `--host-preprocessing` moved the model's front, its `host_front`."""
    return doc if spec.front is None else {**doc, "host_front": spec.front.to_json()}


def stratified_split(
    x: np.ndarray, y: np.ndarray, seed: int, source: str, groups: np.ndarray | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified 60/20/20 split; samples of one group (the frames of one
    file) stay in one split."""
    from sklearn.model_selection import train_test_split

    if groups is not None:
        _, first = np.unique(groups, return_index=True)
        parts = stratified_split(first, y[first], seed, source)
        out = {}
        for name, (chosen, _) in parts.items():
            mask = np.isin(groups, groups[chosen])
            out[name] = (x[mask], y[mask])
        return out
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 5 else None
    try:
        x_tr, x_rest, y_tr, y_rest = train_test_split(
            x, y, test_size=0.4, random_state=seed, stratify=stratify
        )
        x_va, x_te, y_va, y_te = train_test_split(
            x_rest,
            y_rest,
            test_size=0.5,
            random_state=seed,
            stratify=y_rest if stratify is not None else None,
        )
    except ValueError as exc:
        raise DataError(
            f"Data '{source}' with {len(y)} samples cannot be split into train/val/test: "
            f"{exc}. Provide more samples or explicit train_/val_/test_ arrays."
        ) from None
    return {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}


def load_wdbc(seed: int = 0) -> Splits:
    """The Wisconsin Diagnostic Breast Cancer data that scikit-learn ships (offline).

    569 cases, 30 features spanning 0.05 to 2500; label 0 = malignant, 1 = benign. The
    features are standardised on the host because an int8 input has one scale per tensor:
    unstandardised, the small features would quantise to zero.
    """
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    splits = stratified_split(
        ds.data.astype(np.float32), ds.target.astype(np.int64), seed, "sklearn:breast_cancer"
    )
    return Splits(
        *splits["train"],
        *splits["val"],
        *splits["test"],
        source="sklearn:breast_cancer (Wisconsin Diagnostic Breast Cancer)",
        preprocessing=Preprocessing.standardize(splits["train"][0]),
        positive_class=0,  # malignant
        class_names=("malignant", "benign"),
        details={"format": "embedded", "dataset": "wdbc"},
    )


def _image_geometry(
    input_shape: tuple[int | None, ...] | None, resize: tuple[int, int] | None
) -> tuple[tuple[int, int] | None, int | None]:
    """(height, width) and channels to decode image files to, from --resize and the model."""
    sample = tuple(input_shape[1:]) if input_shape is not None else ()
    if len(sample) != 3:
        return resize, None
    height, width, channels = sample
    if resize is None and height is not None and width is not None:
        resize = (int(height), int(width))
    return resize, None if channels is None else int(channels)


def _read(
    source: str | Path,
    *,
    labelled: bool,
    label_column: str,
    labels: Path | None,
    resize: tuple[int, int] | None,
    input_shape: tuple[int | None, ...] | None,
    window: Window | None,
    exclude: tuple[str, ...] = (),
) -> Loaded:
    """Dispatches a `--data`/`--calibration-data` value to its loader (`exclude`: CSV
    columns that are not features)."""
    from pipeline.data.loaders import medmnist

    if medmnist.is_spec(source):
        from pipeline.data.loaders.npz import load_npz

        spec = medmnist.parse_spec(str(source))
        path, details, warnings = medmnist.fetch(spec)
        loaded = load_npz(path, labelled=labelled)
        return replace(
            loaded,
            source=str(source),
            class_names=spec.info.labels,
            positive_class=spec.info.positive_class,
            details={**details, "layout": loaded.details.get("layout")},
            warnings=loaded.warnings + warnings,
        )
    path = Path(source)
    if labels is not None and not path.is_dir():
        raise DataError(
            f"--labels {labels} labels the files of an image/DICOM folder, but --data '{path}' "
            "is not a folder. Drop --labels, or pass the folder with --data."
        )
    if path.is_dir():
        from pipeline.data.loaders.folder import load_folder

        image_size, channels = _image_geometry(input_shape, resize)
        return load_folder(
            path,
            labels=labels,
            label_column=label_column,
            image_size=image_size,
            channels=channels,
            window=window,
            labelled=labelled,
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        from pipeline.data.loaders.tabular import load_csv

        return load_csv(path, label_column=label_column, labelled=labelled, exclude=exclude)
    require_exists(path)
    if suffix == ".npz":
        from pipeline.data.loaders.npz import load_npz

        return load_npz(path, labelled=labelled)
    raise DataError(
        f"Data '{path}' is a '{suffix or 'extensionless'}' file; expected an .npz, a .csv, "
        "a folder of PNG/JPEG or DICOM files, or medmnist:NAME[@SIZE]."
    )


def require_exists(source: str | Path, flag: str = "--data") -> None:
    """Raises DataError when a local data path is missing: cheap, so it runs before --out."""
    if str(source).lower().startswith("medmnist:") or Path(source).exists():
        return
    raise DataError(
        f"Data '{source}' does not exist. Pass an .npz, a .csv, a folder of PNG/JPEG or "
        f"DICOM files, or medmnist:NAME[@SIZE] with {flag}."
    )


def _resolve_positive(
    requested: int | str | None,
    default: int,
    class_names: tuple[str, ...] | None,
    num_classes: int,
    source: str,
) -> int:
    """The positive class index from --positive-class (index or class name)."""
    if requested is None:
        return default
    if isinstance(requested, str) and not requested.strip().isdigit():
        names = [n.lower() for n in class_names or ()]
        if requested.strip().lower() not in names:
            raise DataError(
                f"--positive-class '{requested}' is not a class of '{source}'; its classes "
                f"are {list(class_names or range(num_classes))}. Pass a name or an index."
            )
        return names.index(requested.strip().lower())
    index = int(requested)
    if not 0 <= index < max(num_classes, 2):
        raise DataError(
            f"--positive-class {index} is out of range for '{source}' with "
            f"{num_classes} classes; pass an index in [0, {max(num_classes, 2) - 1}]."
        )
    return index


def load(
    source: str | Path | None,
    *,
    scale: float | None = None,
    offset: float | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    seed: int = 0,
    label_column: str = "label",
    labels: Path | None = None,
    resize: tuple[int, int] | None = None,
    window: Window | None = None,
    positive_class: int | str | None = None,
    calibration: str | Path | None = None,
    input_shape: tuple[int | None, ...] | None = None,
    subgroups: tuple[str, ...] = (),
    subgroup_bands: dict[str, tuple[float, ...]] | None = None,
) -> Splits:
    """Loads the data named by `--data` (None: the embedded WDBC default).

    Args:
        source: file, folder or `medmnist:NAME[@SIZE]`.
        scale, offset: affine preprocessing x * scale + offset.
        mean, std: standardisation (x - mean) / std, scalar or per channel/feature.
        seed: for splitting data that does not come split.
        label_column: label column of a tabular CSV or a folder's label CSV.
        labels: a `filename,label` CSV for a folder.
        resize: (height, width) for images; folders default to the model's size.
        window: DICOM VOI window.
        positive_class: index or class name; default the dataset's own, else 1.
        calibration: unlabelled source for the int8 representative dataset.
        input_shape: the model's input shape, to decode image files to its size/channels.
        subgroups, subgroup_bands: `--subgroup` attributes to read beside the cases, and
            the bands of numeric ones (see `pipeline.data.subgroups`).

    Raises:
        DataError: the source is missing, unreadable or malformed; see the message.
    """
    if source is None:
        if subgroups:
            from pipeline.data.subgroups import read_subgroups

            read_subgroups(Loaded({}, "the embedded WDBC data"), subgroups, {}, seed=0, sizes={})
        splits = load_wdbc(seed)
        if mean is not None or std is not None or scale is not None or offset is not None:
            splits = replace(splits, preprocessing=_value_spec(scale, offset, mean, std))
    else:
        loaded = _read(
            source,
            labelled=True,
            label_column=label_column,
            labels=labels,
            resize=resize,
            input_shape=input_shape,
            window=window,
            exclude=subgroups,
        )
        parts = _labelled_splits(loaded, seed)
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (parts[name] for name in SPLIT_NAMES)
        spec = _value_spec(scale, offset, mean, std).with_decode(loaded.decode)
        splits = Splits(
            x_tr,
            y_tr,
            x_va,
            y_va,
            x_te,
            y_te,
            source=loaded.source,
            preprocessing=spec.with_geometry(resize=loaded.image_size or resize),
            positive_class=1 if loaded.positive_class is None else loaded.positive_class,
            class_names=loaded.class_names,
            details=loaded.details,
            warnings=loaded.warnings,
            subgroups=_subgroups(
                loaded, parts, subgroups, subgroup_bands, seed, label_column, labels
            ),
        )
        if loaded.class_names is not None and splits.num_classes > len(loaded.class_names):
            raise DataError(
                f"Labels of '{loaded.source}' go up to {splits.num_classes - 1}, but it names "
                f"only {len(loaded.class_names)} classes {list(loaded.class_names)}."
            )
    splits = replace(
        splits,
        positive_class=_resolve_positive(
            positive_class,
            splits.positive_class,
            splits.class_names,
            splits.num_classes,
            splits.source,
        ),
    )
    if calibration is not None:
        splits = _with_calibration(splits, calibration, label_column, resize, input_shape, window)
    return splits


def _subgroups(
    loaded: Loaded,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    names: tuple[str, ...],
    bands: dict[str, tuple[float, ...]] | None,
    seed: int,
    label_column: str,
    labels: Path | None,
) -> SubgroupValues | None:
    """The `--subgroup` values of the validation and test cases (None without)."""
    from pipeline.data.subgroups import read_subgroups

    sizes = {name: len(parts[name][1]) for name in SPLIT_NAMES}
    return read_subgroups(
        loaded, names, bands or {}, seed=seed, sizes=sizes, label_column=label_column, labels=labels
    )


def _with_calibration(
    splits: Splits,
    calibration: str | Path,
    label_column: str,
    resize: tuple[int, int] | None,
    input_shape: tuple[int | None, ...] | None,
    window: Window | None,
) -> Splits:
    """The splits with `--calibration-data`'s samples as the int8 representative dataset.

    Raises:
        DataError: the calibration source is unreadable or holds no samples.
    """
    cal = _read(
        calibration,
        labelled=False,
        label_column=label_column,
        labels=None,
        resize=resize,
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


def _labelled_splits(loaded: Loaded, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train/val/test with labels: as the source split them, else a stratified split."""
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (x, y) in loaded.parts.items():
        if y is None:
            raise DataError(f"Data '{loaded.source}' has no labels; evaluation needs them.")
        parts[name] = (x, y)
    if "all" in parts:
        parts = stratified_split(*parts["all"], seed, loaded.source, loaded.groups)
    for name in SPLIT_NAMES:
        if len(parts[name][0]) == 0:
            raise DataError(
                f"The {name} split of '{loaded.source}' is empty; every split needs samples."
            )
    return parts


def _value_spec(
    scale: float | None,
    offset: float | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> Preprocessing:
    if mean is not None or std is not None:
        return Preprocessing.from_mean_std(
            0.0 if mean is None else mean, 1.0 if std is None else std
        )
    return Preprocessing.affine(scale, offset)


def from_config(
    config: DataConfig,
    *,
    input_shape: tuple[int | None, ...] | None = None,
    positive_class: int | str | None = None,
) -> Splits:
    """`load()` with the options of a `DataConfig`."""
    from pipeline.data.loaders.dicom import Window

    window = None
    if config.window_from_file:
        window = Window(from_file=True)
    elif config.window_center is not None and config.window_width is not None:
        window = Window(config.window_center, config.window_width)
    return load(
        config.path,
        scale=config.scale,
        offset=config.offset,
        mean=config.mean,
        std=config.std,
        seed=config.seed,
        label_column=config.label_column,
        labels=config.labels,
        resize=config.resize,
        window=window,
        positive_class=positive_class,
        calibration=config.calibration,
        input_shape=input_shape,
        subgroups=config.subgroups,
        subgroup_bands=config.bands,
    )


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


def write_preprocessing(
    path: Path,
    splits: Splits,
    input_shape: tuple[int | None, ...],
    postprocess: str,
    decision_threshold: float | None = None,
) -> None:
    """Writes `preprocessing.json`: what a device must do before and after the model."""
    doc = _with_front(
        splits.preprocessing,
        {
            "schema_version": 2,
            "input_shape": [None if d is None else int(d) for d in input_shape],
            "layout": "channels_last",
            "preprocessing": splits.preprocessing.to_json(),
        },
    )
    doc = {
        **doc,
        "postprocess": postprocess,
        "classes": {
            "names": None if splits.class_names is None else list(splits.class_names),
            "positive_class": splits.positive_class,
            "decision_threshold": decision_threshold,
        },
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
