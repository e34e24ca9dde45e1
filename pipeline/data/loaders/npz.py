"""NumPy `.npz` archives in MedMNIST layout or with `x`/`y` arrays.

Always read with `allow_pickle=False`: a pickled object array in a data file can run code.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from pipeline.data.loaders import SPLIT_NAMES, LoadedArrays
from pipeline.data.loaders.checks import check_features, check_labels
from pipeline.errors import DataError

MEDMNIST_KEYS = (
    "train_images",
    "train_labels",
    "val_images",
    "val_labels",
    "test_images",
    "test_labels",
)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz, refusing pickles.

    Raises:
        DataError: missing, a directory, pickled, truncated or not an .npz.
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
            return {k: npz[k] for k in npz.files}
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


def load_npz(path: Path, *, labelled: bool = True) -> LoadedArrays:
    """Reads an .npz in MedMNIST layout (given splits) or with `x`/`y` arrays (to split).

    Args:
        path: the .npz file.
        labelled: False for calibration data, where `x` alone (or MedMNIST images) suffice
            and labels are ignored.

    Raises:
        DataError: unreadable file, unknown keys, mismatched lengths, bad values.
    """
    arrays = read_arrays(path)
    if all(f"{name}_images" in arrays for name in SPLIT_NAMES) and (
        not labelled or all(k in arrays for k in MEDMNIST_KEYS)
    ):
        parts: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        for name in SPLIT_NAMES:
            x = check_features(arrays[f"{name}_images"], f"'{name}_images' in '{path}'")
            y = None
            if labelled:
                y = check_labels(arrays[f"{name}_labels"], f"'{name}_labels' in '{path}'")
                if len(x) != len(y):
                    raise DataError(
                        f"'{name}_images' has {len(x)} samples but '{name}_labels' has "
                        f"{len(y)} in '{path}'; they must match."
                    )
            parts[name] = (x, y)
        if not labelled:  # calibration: every image is a candidate
            parts = {"all": (np.concatenate([x for x, _ in parts.values()]), None)}
        return LoadedArrays(parts, str(path), details={"format": "npz", "layout": "medmnist"})
    if "x" in arrays and ("y" in arrays or not labelled):
        x = check_features(arrays["x"], f"'x' in '{path}'")
        y = check_labels(arrays["y"], f"'y' in '{path}'") if labelled else None
        if y is not None and len(x) != len(y):
            raise DataError(f"'x' has {len(x)} samples but 'y' has {len(y)} in '{path}'.")
        if len(x) == 0:
            raise DataError(f"Data file '{path}' holds no samples ('x' is empty).")
        return LoadedArrays({"all": (x, y)}, str(path), details={"format": "npz", "layout": "x/y"})
    expected = "'x' (and 'y' for labelled data)" if not labelled else "'x' and 'y'"
    raise DataError(
        f"Data file '{path}' has arrays {sorted(arrays)}; expected MedMNIST keys "
        f"({', '.join(MEDMNIST_KEYS)}) or {expected}. Rename the arrays accordingly."
    )
