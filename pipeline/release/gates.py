"""Release gates: is the int8 model good enough to ship?

Each gate compares the int8 model with the float32 model (drops), with a fixed limit, or,
given `--baseline`, with the previous release's int8 model. Every check is recorded in
`report.json` under `gates` with its measured value and limit; a failed gate makes the CLI
exit 1 after the artifacts and the report are written (the report is what CI uploads).
A gate that cannot be measured (no bench, no sensitivity in a multi-class task) fails:
a release criterion nobody measured is not met.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import BuildConfig, GatesConfig
from pipeline.errors import ConfigError

INT8 = "int8"
FLOAT32 = "float32"


@dataclass(frozen=True)
class Check:
    """One gate check."""

    name: str
    against: str  # float32 | baseline | limit | a runtime name
    measured: Any
    limit: Any
    passed: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "against": self.against,
            "measured": self.measured,
            "limit": self.limit,
            "passed": self.passed,
            "detail": self.detail,
        }


def load_baseline(path: Path) -> dict[str, Any]:
    """The previous release's report.json, checked for what the gates read.

    Raises:
        ConfigError: the file is missing, not JSON, or not a bedside-lite report.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"Baseline '{path}' does not exist; expected the report.json of the previous release."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Baseline '{path}' is not JSON ({exc}); expected a report.json."
        ) from None
    ok = (
        isinstance(doc, dict)
        and isinstance(doc.get("metrics", {}).get(INT8), dict)
        and isinstance(doc.get("artifacts", {}).get(INT8), dict)
    )
    if not ok:
        raise ConfigError(
            f"Baseline '{path}' is not a bedside-lite report.json: expected metrics.int8 and "
            "artifacts.int8. Pass the report.json written by `bedside-lite build`."
        )
    return doc


def _p50(report: dict[str, Any], variant: str) -> float | None:
    entry = report.get("bench", {}).get(variant) or {}
    if entry.get("status") != "ok":
        return None
    return entry.get("latency_ms", {}).get("p50")


def _metric(report: dict[str, Any], variant: str, name: str) -> float | None:
    return (report.get("metrics", {}).get(variant) or {}).get(name)


def _bytes(report: dict[str, Any], variant: str) -> int | None:
    return (report.get("artifacts", {}).get(variant) or {}).get("bytes")


def _check(
    name: str,
    against: str,
    measured: float | None,
    limit: float,
    upper: bool,
    detail: str,
    missing: str,
) -> Check:
    if measured is None:
        return Check(name, against, None, limit, False, f"not measured: {missing}")
    passed = measured <= limit if upper else measured >= limit
    return Check(name, against, measured, limit, bool(passed), detail)


def _drop(
    report: dict[str, Any],
    other: dict[str, Any],
    other_variant: str,
    metric: str,
    name: str,
    limit: float,
    against: str,
) -> Check:
    mine, theirs = _metric(report, INT8, metric), _metric(other, other_variant, metric)
    missing = (
        f"{metric} is undefined (a multi-class task has no {metric}, a single-class split no AUROC)"
    )
    if mine is None or theirs is None:
        return _check(name, against, None, limit, True, "", missing)
    return _check(
        name,
        against,
        theirs - mine,
        limit,
        True,
        f"{against} {metric} {theirs:.4f} - int8 {metric} {mine:.4f}",
        missing,
    )


def _noninferiority(report: dict[str, Any], metric: str, margin: float) -> Check:
    """Passes when the upper 95% bound of float32 - int8 (paired bootstrap) is <= margin."""
    paired = ((_metric(report, INT8, "vs_float32") or {}).get(metric) or {}).get("ci95")
    upper = None if paired is None else -paired[0]
    return _check(
        f"noninferiority_{metric}",
        FLOAT32,
        upper,
        margin,
        True,
        f"95% interval of float32 - int8 {metric}: [{-paired[1]:.4f}, {upper:.4f}] (paired "
        "bootstrap); the upper bound must not exceed the margin"
        if paired is not None
        else "",
        f"no paired interval of {metric} (--bootstrap 0, or a multi-class task has no {metric})",
    )


def _pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old <= 0:
        return None
    return (new - old) / old * 100.0


def evaluate_limits(
    report: dict[str, Any],
    gates: GatesConfig,
    baseline: dict[str, Any] | None = None,
    bench_note: str = "the bench did not run (--no-bench) or failed",
) -> list[Check]:
    """The limit gates (not the `require_*` ones) on a report-shaped dict.

    `report` needs `metrics`, `artifacts` and `bench` keyed by variant, as in report.json;
    sweep points pass their validation metrics in the same shape.
    """
    checks: list[Check] = []
    if gates.max_auroc_drop is not None:
        checks.append(
            _drop(report, report, FLOAT32, "auroc", "max_auroc_drop", gates.max_auroc_drop, FLOAT32)
        )
    if gates.max_sensitivity_drop is not None:
        checks.append(
            _drop(
                report,
                report,
                FLOAT32,
                "sensitivity",
                "max_sensitivity_drop",
                gates.max_sensitivity_drop,
                FLOAT32,
            )
        )
    if gates.min_specificity is not None:
        spec = _metric(report, INT8, "specificity")
        checks.append(
            _check(
                "min_specificity",
                "limit",
                spec,
                gates.min_specificity,
                False,
                f"int8 specificity {spec:.4f}" if spec is not None else "",
                "specificity is undefined for a multi-class task",
            )
        )
    for metric in ("auroc", "sensitivity"):
        margin = getattr(gates, f"noninferiority_{metric}")
        if margin is not None:
            checks.append(_noninferiority(report, metric, margin))
    if gates.max_int8_bytes is not None:
        size = _bytes(report, INT8)
        checks.append(
            _check(
                "max_int8_bytes",
                "limit",
                size,
                gates.max_int8_bytes,
                True,
                f"model_int8.tflite is {size} bytes",
                "no int8 artifact",
            )
        )
    if gates.max_int8_p50_ms is not None:
        p50 = _p50(report, INT8)
        checks.append(
            _check(
                "max_int8_p50_ms",
                "limit",
                p50,
                gates.max_int8_p50_ms,
                True,
                f"int8 p50 {p50} ms",
                bench_note,
            )
        )
    if gates.min_speedup is not None:
        p_f, p_i = _p50(report, FLOAT32), _p50(report, INT8)
        speedup = p_f / p_i if p_f is not None and p_i else None
        checks.append(
            _check(
                "min_speedup",
                FLOAT32,
                speedup,
                gates.min_speedup,
                False,
                f"float32 p50 {p_f} ms / int8 p50 {p_i} ms",
                bench_note,
            )
        )
    if baseline is not None:
        if gates.max_auroc_drop is not None:
            checks.append(
                _drop(
                    report,
                    baseline,
                    INT8,
                    "auroc",
                    "max_auroc_drop",
                    gates.max_auroc_drop,
                    "baseline",
                )
            )
        if gates.max_sensitivity_drop is not None:
            checks.append(
                _drop(
                    report,
                    baseline,
                    INT8,
                    "sensitivity",
                    "max_sensitivity_drop",
                    gates.max_sensitivity_drop,
                    "baseline",
                )
            )
        if gates.max_latency_regression_pct is not None:
            new, old = _p50(report, INT8), _p50(baseline, INT8)
            checks.append(
                _check(
                    "max_latency_regression_pct",
                    "baseline",
                    _pct(new, old),
                    gates.max_latency_regression_pct,
                    True,
                    f"int8 p50 {new} ms vs baseline {old} ms",
                    f"{bench_note}, or the baseline has no int8 latency",
                )
            )
        if gates.max_size_growth_pct is not None:
            new, old = _bytes(report, INT8), _bytes(baseline, INT8)
            checks.append(
                _check(
                    "max_size_growth_pct",
                    "baseline",
                    _pct(new, old),
                    gates.max_size_growth_pct,
                    True,
                    f"int8 {new} bytes vs baseline {old} bytes",
                    "no int8 size",
                )
            )
    return checks


def evaluate(
    report: dict[str, Any], config: BuildConfig, baseline: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every gate of a build: the `gates` block of report.json."""
    checks = evaluate_limits(report, config.gates, baseline)
    verification = {c["target"]: c for c in report.get("quantization", {}).get("verification", [])}
    for target in config.quantize.require_runtimes:
        name = getattr(target, "value", target)  # a runtime, or a device's name
        check = verification.get(name)
        status = check["status"] if check else "not verified"
        reason = check.get("reason") if check else "the runtime was not among the targets"
        checks.append(
            Check(
                "require_runtimes",
                name,
                status,
                "ok",
                status == "ok",
                reason or f"the int8 model verified on {name}",
            )
        )
    if config.export.require_parity:
        parity = report.get("onnx", {}).get("parity", {})
        docs = {k: v for k, v in parity.items() if isinstance(v, dict) and "ok" in v}
        ok = bool(docs) and all(d["ok"] for d in docs.values())
        checks.append(
            Check(
                "require_onnx_parity",
                "onnx",
                {k: d["ok"] for k, d in docs.items()} or None,
                True,
                ok,
                "every ONNX file matches its source"
                if ok
                else "an ONNX file does not match its source; see onnx.parity",
            )
        )
    return {
        "passed": all(c.passed for c in checks),
        "checks": [c.to_json() for c in checks],
        "baseline": str(config.gates.baseline) if config.gates.baseline else None,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def failure_message(check: dict[str, Any]) -> str:
    """One line saying which gate failed, what was measured, and the limit."""
    name, against = check["name"], check["against"]
    if check["measured"] is None:
        return f"gate {name} ({against}) failed: {check['detail']}; limit {_fmt(check['limit'])}"
    relation = "below the minimum" if name.startswith("min_") else "above the limit"
    if name.startswith("require_"):
        relation = "instead of"
    return (
        f"gate {name} ({against}) failed: measured {_fmt(check['measured'])} {relation} "
        f"{_fmt(check['limit'])} ({check['detail']})"
    )
