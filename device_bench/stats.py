"""Latency statistics of timed invokes.

Percentiles use linear interpolation between the two nearest ranks (numpy's
default ``method="linear"``, type 7 of Hyndman & Fan): for sorted samples
``x[0..n-1]`` the p-th percentile is ``x[i] + (x[i+1] - x[i]) * f`` where
``i + f = (n - 1) * p / 100``. The standard deviation is the population one
(``ddof=0``): the runs are all the runs measured, not a sample of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

_NS_PER_MS = 1e6


@dataclass(frozen=True)
class LatencyStats:
    """Latency statistics in milliseconds."""

    min: float
    mean: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    @classmethod
    def from_ns(cls, durations_ns: Sequence[int]) -> LatencyStats:
        """Summarizes durations given in nanoseconds.

        Args:
            durations_ns: At least one duration, in nanoseconds.

        Returns:
            The statistics, in milliseconds.

        Raises:
            ValueError: ``durations_ns`` is empty.
        """
        if len(durations_ns) == 0:
            raise ValueError("Latency statistics need at least one duration; received none.")
        ms = np.asarray(durations_ns, dtype=np.float64) / _NS_PER_MS
        p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99], method="linear")
        return cls(
            min=float(ms.min()),
            mean=float(ms.mean()),
            std=float(ms.std(ddof=0)),
            p50=float(p50),
            p90=float(p90),
            p95=float(p95),
            p99=float(p99),
            max=float(ms.max()),
        )

    def to_json(self) -> dict[str, float]:
        """Returns the JSON form used in reports."""
        return asdict(self)
