"""Resident memory readings."""

from __future__ import annotations

import sys

import pytest

from device_bench import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux-only")
def test_proc_reading_is_positive_and_peak_is_not_below_current() -> None:
    sample = memory.sample_rss()

    assert sample is not None and sample.source == "proc"
    assert 0 < sample.rss_mb <= sample.peak_mb


def test_getrusage_stands_in_without_proc(monkeypatch, tmp_path) -> None:
    pytest.importorskip("resource")
    monkeypatch.setattr(memory, "_STATUS", tmp_path / "no-proc" / "status")

    sample = memory.sample_rss()

    assert sample is not None and sample.source == "getrusage"
    assert sample.peak_mb > 1.0
    assert sample.rss_mb == sample.peak_mb
