"""In-process measurement: report fields, memory ordering, inputs, arena estimate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from device_bench import BenchSettings, InputDataError, Status, measure_model
from device_bench.bench import prepare_model
from tests.device_bench.tflite_files import RUNNABLE_MODELS, model_path


@pytest.mark.parametrize("name", RUNNABLE_MODELS)
def test_report_is_complete_and_ordered(name: str, quick_settings: BenchSettings) -> None:
    report = measure_model(model_path(name), quick_settings)

    assert report.status is Status.OK and report.reason is None
    assert report.runs >= quick_settings.runs
    assert report.file_bytes == model_path(name).stat().st_size
    latency = report.latency_ms
    assert latency is not None
    assert 0 < latency.min <= latency.p50 <= latency.p90 <= latency.p95 <= latency.p99
    assert latency.p99 <= latency.max
    assert latency.min <= latency.mean <= latency.max
    assert report.init_ms is not None and report.init_ms > 0
    assert report.first_invoke_ms is not None and report.first_invoke_ms > 0
    memory = report.memory
    assert memory is not None
    readings = [
        memory.rss_start_mb,
        memory.rss_after_import_mb,
        memory.rss_after_interpreter_mb,
        memory.rss_after_allocate_mb,
        memory.peak_rss_mb,
    ]
    assert all(reading is not None and reading > 0 for reading in readings)
    assert memory.peak_rss_mb is not None and memory.rss_start_mb is not None
    assert memory.rss_start_mb <= memory.peak_rss_mb
    assert memory.rss_after_allocate_mb is not None
    assert memory.rss_after_allocate_mb <= memory.peak_rss_mb
    assert memory.rss_after_import_mb is not None
    assert memory.model_mb == pytest.approx(memory.peak_rss_mb - memory.rss_after_import_mb)
    assert memory.arena_bytes is not None and memory.arena_bytes > 0


def test_arena_estimate_counts_activations_not_weights() -> None:
    prepared = prepare_model(model_path("dense_float32"), BenchSettings(warmup=0))

    # Input [1,16], hidden [1,8], logits [1,4] and softmax [1,4], float32:
    # (16 + 8 + 4 + 4) * 4 bytes. The 16x8 and 8x4 weights do not count.
    assert prepared.setup.memory.arena_bytes == 128


def test_random_input_uses_the_models_dtype_and_quantization(
    quick_settings: BenchSettings,
) -> None:
    report = measure_model(model_path("conv_int8"), quick_settings)

    assert report.input is not None
    assert report.input.source == "random"
    assert report.input.shape == (1, 12, 12, 1)
    assert report.input.dtype == "int8"
    assert report.input.scale is not None and report.input.zero_point is not None


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_input_file_is_quantized_with_the_models_parameters(
    tmp_path: Path, suffix: str, quick_settings: BenchSettings
) -> None:
    samples = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    path = tmp_path / f"samples{suffix}"
    if suffix == ".npy":
        np.save(path, samples)
    else:
        np.savez(path, x=samples)
    settings = dataclasses.replace(quick_settings, input_path=str(path))

    report = measure_model(model_path("dense_int8"), settings)

    assert report.input is not None and report.input.source == "file"
    assert report.input.dtype == "int8"


def test_input_file_of_the_wrong_shape_is_an_input_error(
    tmp_path: Path, quick_settings: BenchSettings
) -> None:
    path = tmp_path / "images.npy"
    np.save(path, np.zeros((2, 28, 28), dtype=np.float32))
    settings = dataclasses.replace(quick_settings, input_path=str(path))

    with pytest.raises(InputDataError, match=r"images\.npy.*\(2, 28, 28\).*\(N, 16\)"):
        measure_model(model_path("dense_int8"), settings)


def test_runs_continue_until_min_seconds() -> None:
    settings = BenchSettings(runs=1, warmup=0, min_seconds=0.2)

    report = measure_model(model_path("dense_float32"), settings)

    assert report.latency_ms is not None
    # Each run is at most max ms long, so reaching 0.2 s needs this many runs.
    assert report.runs >= 200 / report.latency_ms.max * 0.5


def test_settings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="runs must be at least 1.*threads must be at least 1"):
        BenchSettings(runs=0, threads=0)
