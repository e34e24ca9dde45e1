"""`recommendation`: the fastest variant non-inferior to float32 on each measured target."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.config import GatesConfig
from pipeline.release.recommendation import recommend
from pipeline.release.report.schema import BuildReport
from pipeline.release.report.tables import recommendation_lines


def _bench(p50: float) -> dict[str, Any]:
    return {
        "status": "ok",
        "runtime": "ai_edge_litert",
        "runtime_version": "2.3.0",
        "threads": 1,
        "xnnpack": True,
        "note": None,
        "runs": 100,
        "latency_ms": {"p50": p50},
        "init_ms": 1.0,
        "first_invoke_ms": 1.0,
        "peak_rss_mb": 50.0,
        "model_mb": 1.0,
        "arena_bytes": None,
        "ratio_to_float32": None,
    }


def _metrics(auroc_low: float | None, sens_low: float | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"auroc": 0.9, "sensitivity": 0.8}
    doc["vs_float32"] = {
        "auroc": {"diff": 0.0, "ci95": [auroc_low, 0.01]},
        "sensitivity": {"diff": 0.0, "ci95": [sens_low, 0.02]},
    }
    return doc


def _report(p50: dict[str, float], lows: dict[str, tuple[float, float]]) -> BuildReport:
    metrics: dict[str, Any] = {"float32": {"auroc": 0.9, "sensitivity": 0.8}}
    metrics.update({v: _metrics(*low) for v, low in lows.items()})
    return BuildReport.from_json(
        {
            "metrics": metrics,
            "bench": {v: _bench(ms) for v, ms in p50.items()},
            "artifacts": {
                "float32": {"path": "f", "bytes": 400_000, "sha256": "x"},
                "pruned_float32": {"path": "p", "bytes": 400_000, "sha256": "x"},
                "int8": {"path": "i", "bytes": 100_000, "sha256": "x"},
            },
        },
        strict=False,
    )


P50 = {"float32": 0.30, "pruned_float32": 0.27, "int8": 0.36}
CLOSE = {"pruned_float32": (-0.004, -0.01), "int8": (-0.006, -0.015)}


def test_float_faster_and_as_good_is_recommended_over_int8() -> None:
    report = _report(P50, CLOSE)
    rec = recommend(report, GatesConfig())["local"]
    assert rec.ship == "pruned_float32"
    assert rec.eligible == ["pruned_float32", "float32", "int8"]
    assert rec.margins == {"auroc": 0.01, "sensitivity": 0.02}
    assert "1.3x faster than int8" in rec.reason
    report.recommendation = {"local": rec}
    (line,) = recommendation_lines(report)
    assert line.startswith("ship pruned_float32 on this machine: ")


def test_a_variant_outside_the_gates_margin_is_not_eligible() -> None:
    report = _report(P50, {"pruned_float32": (-0.03, -0.01), "int8": (-0.006, -0.015)})
    rec = recommend(report, GatesConfig(noninferiority_auroc=0.02))["local"]
    assert rec.margins == {"auroc": 0.02}
    assert rec.ship == "float32" and "pruned_float32" not in rec.eligible
    assert "auroc - float32 may be -0.030" in rec.reason


def test_int8_when_it_is_fastest_says_nothing_on_the_console() -> None:
    report = _report({"float32": 0.5, "pruned_float32": 0.45, "int8": 0.2}, CLOSE)
    rec = recommend(report, GatesConfig())["local"]
    assert rec.ship == "int8" and "2.2x faster than pruned_float32" in rec.reason
    report.recommendation = {"local": rec}
    assert recommendation_lines(report) == []


def test_a_size_limit_makes_a_slower_small_int8_the_choice() -> None:
    report = _report(P50, CLOSE)
    rec = recommend(report, GatesConfig(max_int8_bytes=200_000))["local"]
    assert rec.ship == "int8" and rec.max_bytes == 200_000
    assert "400000 bytes > max_int8_bytes 200000" in rec.reason


def test_every_measured_target_gets_its_own() -> None:
    report = _report(P50, CLOSE)
    device = {"status": "ok", "latency_ms": {"p50": 1.0}}
    doc = report.to_json()
    doc["bench"]["int8"]["devices"] = {"pi": {**device, "latency_ms": {"p50": 0.5}}}
    doc["bench"]["float32"]["devices"] = {"pi": device}
    recs = recommend(BuildReport.from_json(doc, strict=False), GatesConfig())
    assert set(recs) == {"local", "device:pi"}
    assert recs["device:pi"].ship == "int8"
    assert recs["device:pi"].p50_ms == pytest.approx({"float32": 1.0, "int8": 0.5})


def test_a_faster_int8_that_is_not_eligible_is_named_as_such() -> None:
    lows = {"pruned_float32": (-0.004, -0.07), "int8": (-0.004, -0.07)}
    report = _report({"float32": 0.30, "pruned_float32": 0.29, "int8": 0.20}, lows)
    rec = recommend(report, GatesConfig())["local"]
    assert rec.ship == "float32" and rec.eligible == ["float32"]
    assert "int8 runs 1.5x faster but is not eligible: sensitivity" in rec.reason
