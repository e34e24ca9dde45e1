"""A model and data handed over in memory (the Python API) instead of `--model`/`--data`.

The arrays go through the same checks and splits as an .npz of the same layout: `(x, y)`
is split 60/20/20 as an `x`/`y` file is, `{"train": (x, y), "val": ..., "test": ...}` is
used as given, as a MedMNIST-layout file is. Provenance records each by the sha256 of its
bytes (the model by its weights'), since there is no file to name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.data.loaders import SPLIT_NAMES, LoadedArrays
from pipeline.data.loaders.checks import check_features, check_labels
from pipeline.errors import DataError

ARRAYS_SOURCE = "in-memory arrays"


@dataclass(frozen=True)
class InMemory:
    """What the Python API holds in memory in place of files.

    Attributes:
        model: a `keras.Model` used instead of `--model` (None: the config's).
        model_sha256: sha256 of the model's weights (shapes, dtypes and bytes).
        arrays: samples used instead of `--data` (None: the config's).
        arrays_sha256: sha256 of the arrays' bytes.
        subgroups: per split, subgroup attributes by name, one value per sample (the third
            item of a split's `(x, y, {"site": ...})`); nothing consumes them yet.
    """

    model: Any = None
    model_sha256: str | None = None
    arrays: LoadedArrays | None = None
    arrays_sha256: str | None = None
    subgroups: dict[str, dict[str, np.ndarray]] | None = None

    @property
    def model_source(self) -> str:
        return f"in-memory keras.Model (weights sha256 {self.model_sha256})"


def digest(arrays: Iterable[np.ndarray]) -> str:
    """sha256 over each array's dtype, shape and bytes (in order)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _items(value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, tuple | list) or len(value) not in (2, 3):
        raise DataError(
            f"{where} must be a pair (x, y) of numpy arrays, or (x, y, {{'site': groups}}); "
            f"received {type(value).__name__}. Pass e.g. data={{'train': (x_train, y_train), "
            "...} or data=(x, y)."
        )
    return tuple(value)


def _pair(value: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = (np.asarray(v) for v in _items(value, where)[:2])
    x, y = check_features(x, f"x of {where}"), check_labels(y, f"y of {where}")
    if len(x) != len(y):
        raise DataError(f"x of {where} has {len(x)} samples but y has {len(y)}; they must match.")
    if len(x) == 0:
        raise DataError(f"{where} holds no samples.")
    return x, y


def loaded_arrays(data: Any) -> LoadedArrays:
    """`(x, y)` (to split) or `{"train": (x, y), "val": ..., "test": ...}` as LoadedArrays.

    Raises:
        DataError: not arrays of that shape, or labels that are not class indices.
    """
    parts: dict[str, tuple[np.ndarray, np.ndarray | None]]
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(SPLIT_NAMES))
        if unknown or len(data) != len(SPLIT_NAMES):
            raise DataError(
                f"data has splits {sorted(data)}; expected exactly {list(SPLIT_NAMES)}, each "
                "(x, y). Pass all three, or (x, y) to have it split 60/20/20."
            )
        parts = {name: _pair(data[name], f"data['{name}']") for name in SPLIT_NAMES}
        layout = "splits"
    else:
        parts = {"all": _pair(data, "data")}
        layout = "x/y"
    return LoadedArrays(parts, ARRAYS_SOURCE, details={"format": "arrays", "layout": layout})


def subgroup_arrays(data: Any) -> dict[str, dict[str, np.ndarray]]:
    """The subgroup attributes of `(x, y, {"site": groups})` items, by split ("all" for
    `(x, y, ...)`), each checked to hold one value per sample; {} when none are given.

    Raises:
        DataError: not a dict of name to array, or a length other than the samples'.
    """
    named = dict(data) if isinstance(data, Mapping) else {"all": data}
    found: dict[str, dict[str, np.ndarray]] = {}
    for split, value in named.items():
        where = f"data['{split}']" if split != "all" else "data"
        items = _items(value, where)
        if len(items) < 3:
            continue
        if not isinstance(items[2], Mapping) or not items[2]:
            raise DataError(
                f"the third item of {where} must be a dict of subgroup name to one value per "
                f"sample, e.g. {{'site': sites}}; received {type(items[2]).__name__}."
            )
        groups = {str(k): np.asarray(v) for k, v in items[2].items()}
        samples = len(items[0])
        for name, values in groups.items():
            if values.ndim != 1 or len(values) != samples:
                raise DataError(
                    f"subgroup '{name}' of {where} has shape {values.shape}; expected one "
                    f"value per sample, ({samples},)."
                )
        found[split] = groups
    return found


def arrays_sha256(loaded: LoadedArrays) -> str:
    return digest(a for x, y in loaded.parts.values() for a in (x, y) if a is not None)
