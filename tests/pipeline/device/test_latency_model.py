"""The latency model's measuring of int8 files (`pipeline.device.latency_model.files_ms`),
with device_bench replaced by recorded reports: which figure is taken, and how many runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.device import latency_model
from pipeline.errors import ModelError


def _fake_bench(monkeypatch: pytest.MonkeyPatch, runs: list[list[dict[str, Any]]]) -> list[Any]:
    """device_bench answering with `runs` (one list of model entries per call), in order."""
    calls: list[Any] = []

    def bench(files: list[Path], config: Any) -> dict[str, Any]:
        calls.append((list(files), config))
        return {"models": runs[len(calls) - 1]}

    monkeypatch.setattr(latency_model, "bench", bench)
    return calls


def _whole(p50: float) -> dict[str, Any]:
    return {"path": "m.tflite", "latency_ms": {"p50": p50}}


def test_whole_files_take_the_median_of_separate_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """One run in which a file's process stayed slow does not move that file's time."""
    runs = [[_whole(0.113), _whole(0.240)], [_whole(0.153), _whole(0.241)]]
    runs.append([_whole(0.114), _whole(0.239)])
    calls = _fake_bench(monkeypatch, runs)
    files = [Path("a.tflite"), Path("b.tflite")]
    assert latency_model.files_ms(files, whole=True) == pytest.approx([0.114, 0.240])
    assert len(calls) == latency_model.WHOLE_RUNS == 3
    assert all(f == files and not c.profile for f, c in calls)


def test_layer_files_take_their_profile_sum_in_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"path": "l.tflite", "latency_ms": {"p50": 0.05}, "profile": {"sum_ms": 0.02}}
    calls = _fake_bench(monkeypatch, [[entry]])
    assert latency_model.files_ms([Path("l.tflite")]) == [0.02]
    assert len(calls) == 1 and calls[0][1].profile


def test_a_file_device_bench_could_not_measure_is_a_model_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_bench(monkeypatch, [[{"path": "x.tflite", "reason": "delegate refused"}]])
    with pytest.raises(ModelError, match="x.tflite.*delegate refused"):
        latency_model.files_ms([Path("x.tflite")], whole=True)
