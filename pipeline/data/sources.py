"""Where the data comes from: a `--data`/`--calibration-data` value sent to its loader.

Sources (see `pipeline.data.loaders`): an .npz (MedMNIST layout or `x`/`y`),
`medmnist:NAME[@SIZE]` (downloaded once into the Keras cache), a folder of PNG/JPEG or
DICOM files (class subfolders or a label CSV), a tabular CSV, or the embedded WDBC data
when `--data` is not given.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.loaders import LoadedArrays
from pipeline.data.preprocessing import Preprocessing
from pipeline.data.splits import Splits
from pipeline.data.stratify import stratified_split
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pipeline.data.loaders.dicom import Window


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


def read_source(
    source: str | Path,
    *,
    labelled: bool,
    label_column: str,
    labels: Path | None,
    resize: tuple[int, int] | None,
    input_shape: tuple[int | None, ...] | None,
    window: Window | None,
    exclude: tuple[str, ...] = (),
) -> LoadedArrays:
    """Dispatches a `--data`/`--calibration-data` value to its loader (`exclude`: CSV
    columns that are not features, e.g. `--subgroup` attributes)."""
    from pipeline.config.medmnist import is_spec, parse_spec
    from pipeline.data.loaders import medmnist

    if is_spec(source):
        from pipeline.data.loaders.npz import load_npz

        spec = parse_spec(str(source))
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
    require_data_exists(path)
    if suffix == ".npz":
        from pipeline.data.loaders.npz import load_npz

        return load_npz(path, labelled=labelled)
    raise DataError(
        f"Data '{path}' is a '{suffix or 'extensionless'}' file; expected an .npz, a .csv, "
        "a folder of PNG/JPEG or DICOM files, or medmnist:NAME[@SIZE]."
    )


def require_data_exists(source: str | Path, flag: str = "--data") -> None:
    """Raises DataError when a local data path is missing: cheap, so it runs before --out."""
    if str(source).lower().startswith("medmnist:") or Path(source).exists():
        return
    raise DataError(
        f"Data '{source}' does not exist. Pass an .npz, a .csv, a folder of PNG/JPEG or "
        f"DICOM files, or medmnist:NAME[@SIZE] with {flag}."
    )
