"""What to ship on each measured target: the fastest variant that is as good as float32.

The rule, per measured target (this machine's runtime, `--runtime-python`'s, each
`--device`): among the variants measured there, keep float32 itself and every variant
whose paired difference from float32 on the test split is non-inferior at the gates'
margins (`noninferiority_auroc`, `noninferiority_sensitivity`; 0.01 AUROC and 0.02
sensitivity when neither is set): the lower 95% bound of `variant - float32` (the point
difference without a bootstrap) is at least `-margin`. Ship the fastest by p50 of those.
Size counts only where a limit says so: with `max_int8_bytes` set, a variant larger than
it is not eligible (a size-bound target may then be told to ship int8 although float32
runs faster).
"""

from __future__ import annotations

from typing import Any

from pipeline.config import GatesConfig, Variant
from pipeline.release.report.schema import BuildReport, Recommendation

DEFAULT_MARGINS = {"auroc": 0.01, "sensitivity": 0.02}


def margins(gates: GatesConfig) -> dict[str, float]:
    """The non-inferiority margins the gates set, else the defaults."""
    set_ = {
        "auroc": gates.noninferiority_auroc,
        "sensitivity": gates.noninferiority_sensitivity,
    }
    if all(v is None for v in set_.values()):
        return dict(DEFAULT_MARGINS)
    return {metric: value for metric, value in set_.items() if value is not None}


def _non_inferior(metrics: Any, limits: dict[str, float]) -> str | None:
    """None when `metrics` (a VariantMetrics) is non-inferior to float32, else why not."""
    for metric, margin in limits.items():
        paired = (metrics.vs_float32 or {}).get(metric)
        if paired is None or paired.diff is None:
            if metrics.value(metric) is None:
                continue  # e.g. no sensitivity in a multi-class task
            return f"no paired {metric} difference"
        low = paired.ci95[0] if paired.ci95 is not None else paired.diff
        if low < -margin:
            return f"{metric} - float32 may be {low:+.3f} (margin {margin})"
    return None


def _targets(bench: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """target -> variant -> its BenchOk summary (only the variants measured there)."""
    out: dict[str, dict[str, Any]] = {}
    for variant, summary in bench.items():
        if summary.ok:
            out.setdefault("local", {})[variant] = summary
        other = getattr(summary, "runtime_python", None)
        if other is not None and other.ok:
            out.setdefault("runtime_python", {})[variant] = other
        for name, entry in (getattr(summary, "devices", None) or {}).items():
            if entry.get("status") == "ok" and entry.get("latency_ms"):
                out.setdefault(f"device:{name}", {})[variant] = entry
    return out


def _p50(summary: Any) -> float:
    latency = summary["latency_ms"] if isinstance(summary, dict) else summary.latency_ms
    return float(latency["p50"])


def recommend(report: BuildReport, gates: GatesConfig) -> dict[str, Recommendation]:
    """A recommendation for each target on which at least one variant was measured.

    Args:
        report: the BuildReport (its metrics, bench and artifacts).
        gates: the gates' limits (margins, `max_int8_bytes`).
    """
    limits = margins(gates)
    out = {}
    for target, measured in _targets(report.bench).items():
        p50 = {variant: _p50(summary) for variant, summary in measured.items()}
        refused: dict[str, str] = {}
        for variant in p50:
            why = None
            metrics = report.metrics.get(variant)
            if variant != Variant.FLOAT32.value:
                why = "no test metrics" if metrics is None else _non_inferior(metrics, limits)
            size = report.artifacts.get(variant)
            if why is None and gates.max_int8_bytes is not None and size is not None:
                if size.bytes > gates.max_int8_bytes:
                    why = f"{size.bytes} bytes > max_int8_bytes {gates.max_int8_bytes}"
            if why is not None:
                refused[variant] = why
        eligible = sorted((v for v in p50 if v not in refused), key=lambda v: p50[v])
        out[target] = Recommendation(
            ship=eligible[0] if eligible else None,
            reason=_reason(eligible, p50, refused, limits),
            p50_ms=p50,
            eligible=eligible,
            margins=limits,
            max_bytes=gates.max_int8_bytes,
        )
    return out


def _reason(
    eligible: list[str], p50: dict[str, float], refused: dict[str, str], limits: dict[str, float]
) -> str:
    margin_text = ", ".join(f"{m} {v}" for m, v in limits.items())
    if not eligible:
        return "no measured variant is non-inferior to float32 here: " + "; ".join(
            f"{v}: {why}" for v, why in refused.items()
        )
    best = eligible[0]
    text = (
        f"fastest variant non-inferior to float32 (margins {margin_text}): p50 {p50[best]:.3g} ms"
    )
    int8 = Variant.INT8.value
    if best != int8 and int8 in p50:
        ratio = p50[int8] / p50[best]
        text += (
            f", {ratio:.2g}x faster than int8"
            if ratio >= 1
            else f"; int8 runs {1 / ratio:.2g}x faster"
        )
        if int8 in refused:
            text += f" but is not eligible: {refused[int8]}"
    elif best == int8:
        slower = [v for v in eligible[1:]]
        if slower:
            text += f", {p50[slower[0]] / p50[best]:.2g}x faster than {slower[0]}"
    other = [f"{v}: {why}" for v, why in refused.items() if v != int8 or best == int8]
    return text + (f"; not eligible: {'; '.join(other)}" if other else "")
