"""Release gates: each check with its measured value and limit; a failed gate exits 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import BuildConfig, ExportConfig, GatesConfig, QuantizeConfig, RuntimeTarget
from pipeline.errors import ConfigError
from pipeline.release import gates
from tests.pipeline import release_env


def _report(
    auroc: float = 0.99,
    sens: float = 0.95,
    spec: float = 0.90,
    nbytes: int = 4000,
    p50: float | None = 1.0,
    f32_p50: float | None = 2.0,
) -> dict[str, Any]:
    def bench(value: float | None) -> dict[str, Any]:
        return {"status": "ok", "latency_ms": {"p50": value}} if value is not None else {}

    return {
        "metrics": {
            "float32": {"auroc": 0.995, "sensitivity": 0.97, "specificity": 0.95},
            "int8": {"auroc": auroc, "sensitivity": sens, "specificity": spec},
        },
        "artifacts": {"float32": {"bytes": 9000}, "int8": {"bytes": nbytes}},
        "bench": {"float32": bench(f32_p50), "int8": bench(p50)},
        "quantization": {
            "verification": [
                {"target": "litert", "status": "ok", "reason": None},
                {"target": "litert-no-delegates", "status": "mismatch", "reason": "3 steps off"},
            ]
        },
    }


def _by(checks: list[gates.Check], name: str, against: str) -> gates.Check:
    return next(c for c in checks if c.name == name and c.against == against)


def test_limits_pass_and_fail_with_measured_values() -> None:
    config = GatesConfig(
        max_auroc_drop=0.01,
        max_sensitivity_drop=0.01,
        min_specificity=0.92,
        max_int8_bytes=4096,
        max_int8_p50_ms=1.5,
        min_speedup=2.5,
    )
    checks = gates.evaluate_limits(_report(), config)
    assert {c.name for c in checks} == set(config.limits)
    auroc = _by(checks, "max_auroc_drop", "float32")
    assert auroc.passed and auroc.measured == pytest.approx(0.005)
    sens = _by(checks, "max_sensitivity_drop", "float32")
    assert not sens.passed and sens.measured == pytest.approx(0.02)
    spec = _by(checks, "min_specificity", "limit")
    assert not spec.passed and spec.measured == 0.90 and spec.limit == 0.92
    assert _by(checks, "max_int8_bytes", "limit").passed
    assert _by(checks, "max_int8_p50_ms", "limit").passed
    speed = _by(checks, "min_speedup", "float32")
    assert not speed.passed and speed.measured == pytest.approx(2.0)
    message = gates.failure_message(spec.to_json())
    assert "min_specificity" in message and "0.9 below the minimum 0.92" in message


def test_unmeasurable_gates_fail_instead_of_passing_silently() -> None:
    report = _report(p50=None, f32_p50=None)
    del report["metrics"]["int8"]["sensitivity"]
    checks = gates.evaluate_limits(
        report, GatesConfig(max_int8_p50_ms=5.0, min_speedup=1.0, max_sensitivity_drop=0.5)
    )
    assert checks and not any(c.passed for c in checks)
    assert all(c.measured is None and c.detail.startswith("not measured") for c in checks)
    assert "not measured" in gates.failure_message(checks[0].to_json())


def test_baseline_regressions_are_detected(tmp_path: Path) -> None:
    baseline = _report(auroc=0.995, sens=0.96, nbytes=4000, p50=1.0)
    (tmp_path / "report.json").write_text(json.dumps(baseline))
    config = GatesConfig(
        max_auroc_drop=0.01,
        max_sensitivity_drop=0.05,
        max_latency_regression_pct=10.0,
        max_size_growth_pct=5.0,
        baseline=tmp_path / "report.json",
    )
    baseline = gates.load_baseline(tmp_path / "report.json")
    same = gates.evaluate_limits(_report(auroc=0.995, sens=0.96), config, baseline)
    assert all(c.passed for c in same if c.against == "baseline")
    worse = gates.evaluate_limits(
        _report(auroc=0.97, sens=0.96, nbytes=4400, p50=1.25), config, baseline
    )
    by = {c.name: c for c in worse if c.against == "baseline"}
    assert set(by) == {
        "max_auroc_drop",
        "max_sensitivity_drop",
        "max_latency_regression_pct",
        "max_size_growth_pct",
    }
    assert not by["max_auroc_drop"].passed
    assert by["max_auroc_drop"].measured == pytest.approx(0.025)
    assert by["max_sensitivity_drop"].passed
    assert not by["max_latency_regression_pct"].passed
    assert by["max_latency_regression_pct"].measured == pytest.approx(25.0)
    assert not by["max_size_growth_pct"].passed
    assert by["max_size_growth_pct"].measured == pytest.approx(10.0)
    faster = gates.evaluate_limits(
        _report(auroc=0.995, sens=0.96, nbytes=3000, p50=0.5), config, baseline
    )
    assert all(c.passed for c in faster if c.against == "baseline")


def test_require_gates_read_verification_and_onnx_parity() -> None:
    config = BuildConfig(
        quantize=QuantizeConfig(
            require_runtimes=(RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES)
        ),
        export=ExportConfig(require_parity=True),
    )
    report = _report()
    report["onnx"] = {"parity": {"float": {"ok": True}, "int8": {"ok": False}}}
    doc = gates.evaluate(report, config)
    assert doc["passed"] is False
    runtime = {c["against"]: c for c in doc["checks"] if c["name"] == "require_runtimes"}
    assert runtime["litert"]["passed"] and not runtime["litert-no-delegates"]["passed"]
    assert runtime["litert-no-delegates"]["measured"] == "mismatch"
    assert "3 steps off" in gates.failure_message(runtime["litert-no-delegates"])
    parity = next(c for c in doc["checks"] if c["name"] == "require_onnx_parity")
    assert parity["passed"] is False and parity["measured"] == {"float": True, "int8": False}
    assert gates.evaluate(_report(), BuildConfig()) == {
        "passed": True,
        "checks": [],
        "baseline": None,
    }


def test_gate_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_size_growth_pct compares with the previous"):
        GatesConfig(max_size_growth_pct=5.0)
    with pytest.raises(ConfigError, match="is not a file"):
        GatesConfig(max_size_growth_pct=5.0, baseline=tmp_path / "missing.json")
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(ConfigError, match="no gate uses it"):
        GatesConfig(baseline=tmp_path / "r.json")
    with pytest.raises(ConfigError, match="min_specificity is a fraction"):
        GatesConfig(min_specificity=90.0)
    with pytest.raises(ConfigError, match="max_int8_bytes must be > 0"):
        GatesConfig(max_int8_bytes=0)
    with pytest.raises(ConfigError, match="not a bedside-lite report.json"):
        gates.load_baseline(tmp_path / "r.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="is not JSON"):
        gates.load_baseline(tmp_path / "bad.json")


def test_bad_baseline_is_exit_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"metrics": {}}))
    from pipeline.cli import main

    code = main(
        [
            "build",
            "--out",
            str(tmp_path / "o"),
            "--baseline",
            str(tmp_path / "r.json"),
            "--gate",
            "max_size_growth_pct=5",
        ]
    )
    assert code == 2
    assert "not a bedside-lite report.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_failed_gate_exits_1_with_reasons_and_still_writes_the_report(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.getbasetemp() / "release"
    out, run = release_env.release_build(root, "a")
    assert run.code == 1
    assert run.stdout == ""  # --quiet: no table
    failures = [line for line in run.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 2, run.stderr
    size = next(f for f in failures if "max_int8_bytes" in f)
    nbytes = (out / "model_int8.tflite").stat().st_size
    assert f"measured {nbytes} above the limit 100" in size
    growth = next(f for f in failures if "max_size_growth_pct (baseline)" in f)
    expected = (nbytes - release_env.BASELINE_INT8_BYTES) / release_env.BASELINE_INT8_BYTES
    assert f"{expected * 100:.6g}"[:5] in growth
    report = json.loads((out / "report.json").read_text())
    checks = report["gates"]["checks"]
    assert report["gates"]["passed"] is False
    assert {(c["name"], c["against"], c["passed"]) for c in checks} == {
        ("max_auroc_drop", "float32", True),
        ("max_int8_bytes", "limit", False),
        ("max_auroc_drop", "baseline", True),
        ("max_size_growth_pct", "baseline", False),
    }
    for check in checks:
        assert {"name", "measured", "limit", "passed"} <= set(check)
    assert (out / "model_int8.tflite").is_file() and (out / "report.md").is_file()
