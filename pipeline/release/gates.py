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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import GATES, BuildConfig, GatesConfig, GateSpec
from pipeline.config.gates import BASELINE, FLOAT32, LIMIT, Measure
from pipeline.errors import ConfigError
from pipeline.release.report.schema import BuildReport
from pipeline.release.report.subgroups import worst_group

INT8 = "int8"
# a report with nothing measured: what a missing baseline reads as
_EMPTY = BuildReport.coerce({"metrics": {}, "artifacts": {}, "bench": {}})


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


def load_baseline(path: Path) -> BuildReport:
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
    try:
        return BuildReport.coerce(doc)
    except ValueError as exc:
        raise ConfigError(
            f"Baseline '{path}' is not a bedside-lite report.json ({exc}). Pass the "
            "report.json written by `bedside-lite build`."
        ) from None


def _p50(report: BuildReport, variant: str) -> float | None:
    entry = (report.bench or {}).get(variant)
    if entry is None or not entry.ok:
        return None
    return entry.latency_ms.get("p50")


def _metric(report: BuildReport, variant: str, name: str) -> float | None:
    metrics = (report.metrics or {}).get(variant)
    return None if metrics is None else metrics.value(name)


def _bytes(report: BuildReport, variant: str) -> int | None:
    artifact = (report.artifacts or {}).get(variant)
    return None if artifact is None else artifact.bytes


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
    report: BuildReport,
    other: BuildReport,
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


def _noninferiority(report: BuildReport, metric: str, margin: float) -> Check:
    """Passes when the upper 95% bound of float32 - int8 (paired bootstrap) is <= margin."""
    int8 = (report.metrics or {}).get(INT8)
    diff = (int8.vs_float32 or {}).get(metric) if int8 is not None else None
    paired = diff.ci95 if diff is not None else None
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


def _micro_kb(spec: GateSpec, limit: float, report: BuildReport) -> Check:
    """`max_arena_kb`: TFLM's smallest working arena of the int8 model (quantization.micro);
    `max_flash_kb`: model_int8.tflite as shipped (with its embedded manifest), which the
    firmware holds as a const array."""
    if spec.measure is Measure.FLASH_KB:
        size = _bytes(report, INT8)
        kb = None if size is None else size / 1024
        detail = f"model_int8.tflite as shipped is {size} bytes"
        return _check(spec.name, LIMIT, kb, limit, True, detail, "no int8 artifact")
    micro = report.quantization.micro or {}
    nbytes = micro.get("arena_bytes") if micro.get("status") == "ok" else None
    kb = None if nbytes is None else nbytes / 1024
    what = "TFLM's smallest working arena"
    missing = (
        f"TFLM {micro['status']}: {micro.get('reason')}"
        if micro
        else "TFLM did not run; install the [micro] extra (pip install '.[micro]')"
    )
    return _check(spec.name, LIMIT, kb, limit, True, f"{what}: {nbytes} bytes", missing)


def subgroup_noninferiority(
    report: BuildReport | Mapping[str, Any], name: str, metric: str, margin: float
) -> Check:
    """Passes when, in every judged test subgroup, the upper 95% bound of the paired
    float32 - int8 difference of `metric` is <= `margin`; measures the worst group's bound.
    Not measured (fails) without a judged group or without intervals."""
    worst = worst_group(BuildReport.coerce(report), INT8, metric)
    if worst is None:
        return Check(
            name,
            FLOAT32,
            None,
            margin,
            False,
            f"not measured: no judged test subgroup with a paired {metric} interval "
            "(--subgroup not given, groups below --min-subgroup-cases, --bootstrap 0, or a "
            f"multi-class task has no {metric})",
        )
    passed = worst.upper <= margin
    detail = (
        f"worst judged group {worst.group}: 95% interval of float32 - int8 {metric} "
        f"[{worst.low:.4f}, {worst.upper:.4f}] (paired bootstrap, the group's cases); its upper "
        f"bound {worst.upper:.4f} must not exceed the margin {margin:g}"
    )
    return Check(name, FLOAT32, worst.upper, margin, bool(passed), detail)


def _pct(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old <= 0:
        return None
    return (new - old) / old * 100.0


def _measure(
    spec: GateSpec,
    limit: float,
    report: BuildReport,
    against: str,
    baseline: BuildReport | None,
    bench_note: str,
) -> Check:
    """One check of a gate of `GATES` against float32, a fixed limit or the baseline."""
    name, upper, m = spec.name, spec.upper, spec.measure
    if m is Measure.DROP:
        other, variant = (baseline, INT8) if against == BASELINE else (report, FLOAT32)
        return _drop(report, other or _EMPTY, variant, spec.metric, name, limit, against)
    if m is Measure.NONINFERIORITY:
        return _noninferiority(report, spec.metric, limit)
    if m is Measure.SUBGROUP_NONINFERIORITY:
        return subgroup_noninferiority(report, name, spec.metric, limit)
    if m is Measure.INT8_METRIC:
        value = _metric(report, INT8, spec.metric)
        detail = f"int8 {spec.metric} {value:.4f}" if value is not None else ""
        missing = f"{spec.metric} is undefined for a multi-class task"
        return _check(name, against, value, limit, upper, detail, missing)
    if m is Measure.INT8_BYTES:
        size = _bytes(report, INT8)
        detail = f"model_int8.tflite is {size} bytes"
        return _check(name, against, size, limit, upper, detail, "no int8 artifact")
    if m in (Measure.ARENA_KB, Measure.FLASH_KB):
        return _micro_kb(spec, limit, report)
    if m is Measure.INT8_P50:
        p50 = _p50(report, INT8)
        return _check(name, against, p50, limit, upper, f"int8 p50 {p50} ms", bench_note)
    if m is Measure.SPEEDUP:
        p_f, p_i = _p50(report, FLOAT32), _p50(report, INT8)
        speedup = p_f / p_i if p_f is not None and p_i else None
        detail = f"float32 p50 {p_f} ms / int8 p50 {p_i} ms"
        return _check(name, against, speedup, limit, upper, detail, bench_note)
    old_report = baseline or _EMPTY
    if m is Measure.P50_GROWTH_PCT:
        new, old = _p50(report, INT8), _p50(old_report, INT8)
        detail = f"int8 p50 {new} ms vs baseline {old} ms"
        missing = f"{bench_note}, or the baseline has no int8 latency"
        return _check(name, against, _pct(new, old), limit, upper, detail, missing)
    new_bytes, old_bytes = _bytes(report, INT8), _bytes(old_report, INT8)
    detail = f"int8 {new_bytes} bytes vs baseline {old_bytes} bytes"
    return _check(name, against, _pct(new_bytes, old_bytes), limit, upper, detail, "no int8 size")


def evaluate_limits(
    report: BuildReport | Mapping[str, Any],
    gates: GatesConfig,
    baseline: BuildReport | Mapping[str, Any] | None = None,
    bench_note: str = "the bench did not run (--no-bench) or failed",
) -> list[Check]:
    """The limit gates (not the `require_*` ones) on a report.

    The gates read a report's `metrics`, `artifacts` and `bench` by variant; a sweep point
    passes its validation metrics as a report.json-shaped dict, read leniently as a
    `BuildReport` (as is a dict `report` or `baseline`). Checks against float32
    or a fixed limit come first (in `GateSpec.rank` order), then those against the
    baseline when one is given (in table order).
    """
    report = BuildReport.coerce(report)
    old = None if baseline is None else BuildReport.coerce(baseline)
    limits = gates.limits
    first = sorted((s for s in GATES if s.name in limits), key=lambda s: s.rank)
    passes = [(s, a) for s in first for a in s.against if a != BASELINE]
    if old is not None:
        passes += [(s, BASELINE) for s in GATES if s.name in limits and BASELINE in s.against]
    return [
        _measure(spec, limits[spec.name], report, against, old, bench_note)
        for spec, against in passes
    ]


def evaluate(
    report: BuildReport | Mapping[str, Any],
    config: BuildConfig,
    baseline: BuildReport | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every gate of a build: the `gates` block of report.json."""
    report = BuildReport.coerce(report)
    checks = evaluate_limits(report, config.gates, baseline)
    quantization = report.quantization
    verification = {c["target"]: c for c in quantization.verification} if quantization else {}
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
        parity = report.onnx.parity if report.onnx else {}
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
