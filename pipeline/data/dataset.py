"""Medical data in: the `[data]` options read into train/val/test `Splits`.

`load` reads the source (`pipeline.data.sources`), splits it unless it comes split
(`pipeline.data.stratify`), attaches the value preprocessing and the positive class, and
adds the `--calibration-data` samples (`pipeline.data.calibration`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pipeline.data.calibration import with_calibration
from pipeline.data.loaders import SPLIT_NAMES, LoadedArrays
from pipeline.data.preprocessing import Preprocessing
from pipeline.data.sources import load_wdbc, read_source
from pipeline.data.splits import Splits
from pipeline.data.stratify import labelled_splits
from pipeline.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from pipeline.config import DataConfig
    from pipeline.data.loaders.dicom import Window
    from pipeline.data.subgroups import SubgroupValues


def load(
    config: DataConfig,
    *,
    input_shape: tuple[int | None, ...] | None = None,
    positive_class: int | str | None = None,
    arrays: LoadedArrays | None = None,
) -> Splits:
    """Loads the data named by `config.path` (None: the embedded WDBC default).

    Args:
        config: the `[data]` options: source, value preprocessing, seed for splitting data
            that does not come split, label column/CSV, resize, DICOM window, calibration.
        input_shape: the model's input shape, to decode image files to its size/channels.
        positive_class: index or class name (`--positive-class`); default the dataset's
            own, else 1.
        arrays: samples handed over in memory (the Python API), read instead of
            `config.path` and split as a file of the same layout would be.

    Raises:
        DataError: the source is missing, unreadable or malformed; see the message.
    """
    window = dicom_window(config)
    spec = _value_spec(config)
    if arrays is not None:
        splits = _read_splits(arrays, config, spec)
    elif config.path is None:
        if config.subgroups:  # the embedded data has no attributes: says so, exit 2
            from pipeline.data.subgroups import read_subgroups

            read_subgroups(LoadedArrays({}, "the embedded WDBC data"), config.subgroups, {},
                           seed=0, sizes={})  # fmt: skip
        splits = load_wdbc(config.seed)
        if spec is not None:
            splits = replace(splits, preprocessing=spec)
    else:
        loaded = read_source(
            config.path,
            labelled=True,
            label_column=config.label_column,
            labels=config.labels,
            resize=config.resize,
            input_shape=input_shape,
            window=window,
            exclude=config.subgroups,
        )
        splits = _read_splits(loaded, config, spec)
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
    if config.calibration is not None:
        splits = with_calibration(splits, config.calibration, config, input_shape, window)
    return splits


def dicom_window(config: DataConfig) -> Window | None:
    """The DICOM VOI window of `[data] window_*`; None: the loader's default."""
    from pipeline.data.loaders.dicom import Window

    if config.window_from_file:
        return Window(from_file=True)
    if config.window_center is not None and config.window_width is not None:
        return Window(config.window_center, config.window_width)
    return None


def _read_splits(loaded: LoadedArrays, config: DataConfig, spec: Preprocessing | None) -> Splits:
    parts = labelled_splits(loaded, config.seed)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (parts[name] for name in SPLIT_NAMES)
    spec = (Preprocessing.affine(None, None) if spec is None else spec).with_decode(loaded.decode)
    splits = Splits(
        x_tr,
        y_tr,
        x_va,
        y_va,
        x_te,
        y_te,
        source=loaded.source,
        preprocessing=spec.with_geometry(resize=loaded.image_size or config.resize),
        positive_class=1 if loaded.positive_class is None else loaded.positive_class,
        class_names=loaded.class_names,
        details=loaded.details,
        warnings=loaded.warnings,
        subgroups=_subgroups(loaded, parts, config),
    )
    if loaded.class_names is not None and splits.num_classes > len(loaded.class_names):
        raise DataError(
            f"Labels of '{loaded.source}' go up to {splits.num_classes - 1}, but it names "
            f"only {len(loaded.class_names)} classes {list(loaded.class_names)}."
        )
    return splits


def _subgroups(
    loaded: LoadedArrays, parts: dict[str, tuple[np.ndarray, np.ndarray]], config: DataConfig
) -> SubgroupValues | None:
    """The `--subgroup` values of the validation and test cases (None without)."""
    from pipeline.data.subgroups import read_subgroups

    sizes = {name: len(parts[name][1]) for name in SPLIT_NAMES}
    return read_subgroups(
        loaded,
        config.subgroups,
        config.bands or {},
        seed=config.seed,
        sizes=sizes,
        label_column=config.label_column,
        labels=config.labels,
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


def _value_spec(config: DataConfig) -> Preprocessing | None:
    """x * scale + offset or (x - mean) / std; None when no value option is set."""
    mean, std = config.mean, config.std
    if mean is not None or std is not None:
        return Preprocessing.from_mean_std(
            0.0 if mean is None else mean, 1.0 if std is None else std
        )
    if config.scale is None and config.offset is None:
        return None
    return Preprocessing.affine(config.scale, config.offset)
