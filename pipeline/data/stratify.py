"""Train/val/test from one pool of samples: a deterministic, stratified 60/20/20 split."""

from __future__ import annotations

import numpy as np

from pipeline.data.loaders import SPLIT_NAMES, LoadedArrays
from pipeline.errors import DataError


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


def labelled_splits(loaded: LoadedArrays, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
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
