"""Each model in its own process: crashes, refusals and hangs are reported, not fatal."""

from __future__ import annotations

import dataclasses
import importlib.util
import signal
from pathlib import Path

import pytest

from device_bench import BenchSettings, Status, bench_models, check_models, measure_isolated
from device_bench.worker import CRASH_ENV
from tests.device_bench.tflite_files import model_path


def test_isolated_measurement_is_ok(quick_settings: BenchSettings) -> None:
    report = measure_isolated(model_path("dense_int8"), quick_settings)

    assert report.status is Status.OK
    assert report.runs >= quick_settings.runs
    assert report.memory is not None and report.memory.peak_rss_mb is not None
    assert report.exit_status is None and report.signal is None


@pytest.mark.parametrize(
    ("phase", "signal_name"),
    [("load", "SIGSEGV"), ("run", "SIGSEGV"), ("load", "SIGABRT"), ("run", "SIGKILL")],
)
def test_native_crash_is_reported_and_the_others_are_measured(
    monkeypatch: pytest.MonkeyPatch, quick_settings: BenchSettings, phase: str, signal_name: str
) -> None:
    monkeypatch.setenv(CRASH_ENV, f"{phase}:{signal_name}:dense_int8.tflite")
    models = [model_path("dense_float32"), model_path("dense_int8"), model_path("conv_int8")]

    report = bench_models(models, quick_settings, compare=False)

    first, crashed, last = report.models
    assert first.status is Status.OK and last.status is Status.OK
    assert crashed.status is Status.CRASHED
    assert crashed.signal == signal_name
    assert crashed.exit_status == -getattr(signal, signal_name)
    assert crashed.reason is not None and signal_name in crashed.reason
    assert crashed.latency_ms is None
    if phase == "run":
        # It crashed after loading: what was measured before is kept.
        assert crashed.init_ms is not None and crashed.runtime is not None
    if signal_name == "SIGSEGV":
        assert any("Segmentation fault" in line for line in crashed.stderr_tail)
    assert not report.all_ok


@pytest.mark.slow
def test_hang_becomes_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "run:HANG:dense_int8.tflite")
    settings = BenchSettings(runs=5, warmup=0, min_seconds=0.0, timeout_s=3.0)

    report = bench_models([model_path("dense_int8"), model_path("dense_float32")], settings)

    hung, fine = report.models
    assert hung.status is Status.TIMEOUT
    assert hung.reason is not None and "3 s" in hung.reason
    assert fine.status is Status.OK


@pytest.mark.parametrize(
    "content",
    [b"not a flatbuffer at all", b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40],
    ids=["garbage", "header-only"],
)
def test_corrupt_model_is_refused(
    tmp_path: Path, quick_settings: BenchSettings, content: bytes
) -> None:
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(content)

    report = bench_models([corrupt, model_path("dense_float32")], quick_settings)

    assert report.models[0].status is Status.REFUSED
    assert report.models[0].reason
    assert report.models[1].status is Status.OK


def test_unsupported_model_is_an_error_with_the_reason(quick_settings: BenchSettings) -> None:
    report = measure_isolated(model_path("two_outputs"), quick_settings)

    assert report.status is Status.ERROR
    assert report.reason is not None and "2 output(s)" in report.reason


def test_refused_delegate_is_measured_without_it_and_says_so(
    quick_settings: BenchSettings,
) -> None:
    report = measure_isolated(model_path("sparse_int8"), quick_settings)

    assert report.status is Status.OK
    if report.runtime != "ai_edge_litert":
        pytest.skip("only ai-edge-litert's XNNPACK refuses sparse int8 weights")
    assert report.xnnpack is False
    assert report.note is not None and "measured without them" in report.note


def test_cpu_pinning_and_threads_are_applied(quick_settings: BenchSettings) -> None:
    settings = dataclasses.replace(quick_settings, cpu=0, threads=2, xnnpack=False)

    report = measure_isolated(model_path("conv_int8"), settings)

    assert report.status is Status.OK
    assert report.threads == 2 and report.xnnpack is False


def test_pinning_to_a_missing_cpu_is_an_error(quick_settings: BenchSettings) -> None:
    settings = dataclasses.replace(quick_settings, cpu=4095)

    report = measure_isolated(model_path("conv_int8"), settings)

    assert report.status is Status.ERROR
    assert report.reason is not None and "cannot pin to CPU 4095" in report.reason


def test_check_models_restarts_after_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CRASH_ENV, "check:SIGSEGV:dense_int8.tflite")
    paths = [model_path(n) for n in ("dense_float32", "dense_int8", "conv_int8", "two_outputs")]

    results = check_models(paths)

    assert [r.status for r in results] == [
        Status.OK,
        Status.CRASHED,
        Status.OK,
        Status.REFUSED,
    ]
    assert results[1].signal == "SIGSEGV"
    assert results[3].reason is not None and "2 output(s)" in results[3].reason


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_runtime") is not None, reason="tflite_runtime is installed"
)
def test_missing_runtime_is_an_error_for_every_model(quick_settings: BenchSettings) -> None:
    settings = dataclasses.replace(quick_settings, runtime="tflite_runtime")

    checked = check_models([model_path("dense_int8"), model_path("conv_int8")], settings)
    report = bench_models([model_path("dense_int8")], settings)

    assert [r.status for r in checked] == [Status.ERROR, Status.ERROR]
    assert checked[0].reason is not None and "pip install tflite-runtime" in checked[0].reason
    assert report.models[0].status is Status.ERROR
    assert report.models[0].reason is not None and "tflite_runtime" in report.models[0].reason
