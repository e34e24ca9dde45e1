"""`bootstrap.interval` of many rows of replicate values at once (the per-group intervals of
`pipeline.evaluate.group_bootstrap`): one partition of the distinct rows and np.percentile's
own interpolation, so every bound is the float `bootstrap.interval` gives."""

from __future__ import annotations

import numpy as np

from pipeline.evaluate import bootstrap

QUANTILES = (2.5, 97.5)  # `bootstrap.interval`'s percentiles


def _ranks(b: int) -> tuple[np.ndarray, np.ndarray]:
    """np.percentile's linear method at QUANTILES over b values: the four order
    statistics it interpolates between (previous and next of each) and the weights."""
    virtual = (b - 1) * np.true_divide(QUANTILES, 100)
    below = np.floor(virtual)
    ranks = np.stack([below, below + 1], axis=1)
    ranks[virtual >= b - 1] = b - 1
    return ranks.astype(np.intp).ravel(), virtual - below


def row_intervals(values: np.ndarray) -> list[list[float] | None]:
    """`bootstrap.interval` of each row of (rows, B) floats: by one partition and
    np.percentile's own arithmetic (`numpy.lib._function_base_impl._lerp`, the same floats)
    where every replicate defines the value, else by `bootstrap.interval`. A row equal to
    an earlier one (variants that agree in a group, differences of 0) is not partitioned
    again."""
    sums = values.sum(axis=1)  # NaN where a replicate leaves the value undefined
    same = np.arange(len(values))  # each row's first equal row
    seen: dict[float, list[int]] = {}
    for j, total in enumerate(sums.tolist()):
        if total == total:  # not NaN
            earlier = seen.setdefault(total, [])
            row = values[j].tobytes()
            same[j] = next((k for k in earlier if values[k].tobytes() == row), j)
            if same[j] == j:
                earlier.append(j)
    distinct = np.flatnonzero((same == np.arange(len(values))) & ~np.isnan(sums))
    ranks, gamma = _ranks(values.shape[1])
    chosen = values[distinct]
    chosen.partition(np.unique(ranks), axis=1)
    stats = chosen[:, ranks]
    before, after = stats[:, 0::2], stats[:, 1::2]
    diff = after - before
    found = dict(
        zip(
            distinct.tolist(),
            np.where(gamma >= 0.5, after - diff * (1 - gamma), before + diff * gamma).tolist(),
            strict=True,
        )
    )
    return [found[k] if k in found else bootstrap.interval(values[j])
            for j, k in enumerate(same.tolist())]  # fmt: skip
