"""Compare mode: interleaved rounds and ratios to the first model."""

from __future__ import annotations

import pytest

from device_bench import BenchSettings, ModelReport, Status, bench_models
from device_bench.report import with_ratios
from device_bench.stats import LatencyStats
from device_bench.worker import CRASH_ENV
from tests.device_bench.tflite_files import model_path


def _report(path: str, durations_ns: list[int] | None) -> ModelReport:
    latency = LatencyStats.from_ns(durations_ns) if durations_ns else None
    status = Status.OK if latency else Status.CRASHED
    return ModelReport(path=path, status=status, latency_ms=latency)


def test_ratios_are_relative_to_the_first_model() -> None:
    reports = with_ratios(
        [_report("a", [2_000, 2_000, 4_000]), _report("b", [3_000, 5_000, 7_000])]
    )

    assert reports[0].ratio_to_first == {"p50": 1.0, "mean": 1.0}
    # p50 5 us / 2 us; mean 5 us / (8/3) us.
    assert reports[1].ratio_to_first == pytest.approx({"p50": 2.5, "mean": 15 / 8})


def test_no_ratios_without_a_measured_first_model() -> None:
    reports = with_ratios([_report("a", None), _report("b", [1_000])])

    assert [r.ratio_to_first for r in reports] == [None, None]


def test_compare_measures_every_model_and_ratios_match_p50s() -> None:
    settings = BenchSettings(runs=200, warmup=3, min_seconds=0.2)
    models = [model_path("dense_float32"), model_path("conv_int8"), model_path("dense_int8")]

    report = bench_models(models, settings)

    assert report.compare
    assert all(m.status is Status.OK for m in report.models)
    assert all(m.runs >= settings.runs for m in report.models)
    first = report.models[0]
    assert first.ratio_to_first == {"p50": 1.0, "mean": 1.0}
    assert first.latency_ms is not None
    for model in report.models[1:]:
        assert model.latency_ms is not None and model.ratio_to_first is not None
        assert model.ratio_to_first["p50"] == pytest.approx(
            model.latency_ms.p50 / first.latency_ms.p50
        )
        assert model.ratio_to_first["mean"] == pytest.approx(
            model.latency_ms.mean / first.latency_ms.mean
        )
    assert report.to_json()["settings"]["compare"] is True


def test_a_child_dying_mid_comparison_spares_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CRASH_ENV, "run:SIGSEGV:conv_int8.tflite")
    settings = BenchSettings(runs=50, warmup=1, min_seconds=0.1)
    models = [model_path("dense_float32"), model_path("conv_int8"), model_path("dense_int8")]

    report = bench_models(models, settings)

    first, crashed, last = report.models
    assert crashed.status is Status.CRASHED and crashed.signal == "SIGSEGV"
    assert crashed.ratio_to_first is None
    assert first.status is Status.OK and last.status is Status.OK
    assert last.runs >= settings.runs and last.ratio_to_first is not None


def test_single_model_is_not_a_comparison() -> None:
    report = bench_models([model_path("dense_float32")], BenchSettings(runs=5, min_seconds=0))

    assert not report.compare
    assert report.models[0].ratio_to_first is None
