"""Latency statistics on hand-computed samples."""

from __future__ import annotations

import math

import pytest

from device_bench.stats import LatencyStats


def test_statistics_of_known_samples() -> None:
    # 1, 2, 3, 4, 10 ms given out of order, in nanoseconds.
    stats = LatencyStats.from_ns([4_000_000, 1_000_000, 10_000_000, 3_000_000, 2_000_000])

    assert stats.min == 1.0
    assert stats.max == 10.0
    assert stats.mean == 4.0
    # Population std: squared deviations 9, 4, 1, 0, 36 -> 50 / 5 = 10.
    assert stats.std == pytest.approx(math.sqrt(10.0))
    # Linear interpolation at rank (n - 1) * p: 2.0, 3.6, 3.8, 3.96.
    assert stats.p50 == pytest.approx(3.0)
    assert stats.p90 == pytest.approx(4.0 + 0.6 * 6.0)
    assert stats.p95 == pytest.approx(4.0 + 0.8 * 6.0)
    assert stats.p99 == pytest.approx(4.0 + 0.96 * 6.0)


def test_even_count_median_interpolates_between_middle_samples() -> None:
    stats = LatencyStats.from_ns([1_000, 2_000, 3_000, 5_000])

    assert stats.p50 == pytest.approx(0.0025)
    # Rank 3 * 0.9 = 2.7 -> 3 + 0.7 * (5 - 3) microseconds.
    assert stats.p90 == pytest.approx(0.0044)


def test_single_sample_has_zero_spread() -> None:
    stats = LatencyStats.from_ns([1_500_000])

    assert (stats.min, stats.p50, stats.p99, stats.max) == (1.5, 1.5, 1.5, 1.5)
    assert stats.std == 0.0


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one duration"):
        LatencyStats.from_ns([])


def test_json_has_every_statistic() -> None:
    keys = set(LatencyStats.from_ns([1, 2]).to_json())

    assert keys == {"min", "mean", "std", "p50", "p90", "p95", "p99", "max"}
