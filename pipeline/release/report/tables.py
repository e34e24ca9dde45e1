"""Lines and table rows of a build report, shared by the terminal summary and report.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config import Variant
from pipeline.release.report.schema import (
    BenchSummary,
    BuildReport,
    Gates,
    PairedDiff,
    VariantMetrics,
)

FLIP_CASES_SHOWN = 20  # changed cases listed per variant in report.md; all in report.json

VARIANT_HEADER = (
    "variant",
    "size",
    "AUROC",
    "sensitivity",
    "specificity",
    "accuracy",
    "agreement",
    "p50 ms",
    "p99 ms",
    "peak RSS MB",
)


def fmt(value: Any, spec: str = ".4f") -> str:
    """`value` formatted, `-` for None."""
    return "-" if value is None else format(value, spec)


def cell(value: Any) -> str:
    """A table cell: numbers to 4 significant places, None as `-`, booleans as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or abs(value) >= 1000 or abs(value) < 0.001:
            return f"{value:.4g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)


def _kb(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 1024:.1f} KB"


def _size(report: BuildReport, variant: str, nbytes: int | None, sep: str = " ") -> str:
    """The file's size; for the int8 file with TFLM's account, its arena and flash too."""
    micro = report.quantization.micro or {}
    if variant != "int8" or micro.get("status") != "ok":
        return _kb(nbytes)
    return (
        # flash: the shipped file (the verified flatbuffer plus the embedded manifest)
        f"{_kb(nbytes)}{sep}(TFLM arena {_kb(micro['arena_bytes'])}, flash {_kb(nbytes)})"
    )


def micro_line(report: BuildReport) -> str | None:
    """TFLM's account of the int8 file in one line, when TFLM ran."""
    micro = report.quantization.micro
    if not micro:
        return None
    if micro.get("status") != "ok":
        return f"TFLM: {micro.get('status')} ({micro.get('reason')})"
    crashed = micro.get("arena_crashed_at") or []
    return (
        f"TFLM {micro.get('runtime_version')}: arena {micro['arena_bytes']} bytes (smallest "
        f"that allocated and ran; the allocator's own estimate {micro.get('arena_estimate_bytes')}"
        + (f"; TFLM crashed at {cell(crashed)}" if crashed else "")
        + f"); flash: model_int8.tflite as shipped ({micro.get('flash_includes')}; "
        f"{micro['flash_bytes']} bytes before the manifest was embedded); "
        f"ops {cell(micro.get('ops') or [])}"
        + (f"; float ops {cell(micro['float_ops'])}" if micro.get("float_ops") else "")
    )


def with_ci(m: VariantMetrics | None, metric: str, spec: str, sep: str = " ") -> str:
    """`0.907 [0.81, 0.98]`: a value with its 95% interval, when the build computed one."""
    value = None if m is None else m.value(metric)
    ci = None if m is None else m.interval(metric)
    text = fmt(value, spec)
    return text if not ci or value is None else f"{text}{sep}[{ci[0]:.2f}, {ci[1]:.2f}]"


def operating_point_line(report: BuildReport) -> str | None:
    """`operating point: sensitivity=0.95 -> P(positive) >= 0.3124 (validation ...)`."""
    op = report.operating_point
    if op.threshold is None:
        return None
    val = op.validation
    return (
        f"operating point: {op.rule} -> P(positive) >= {op.threshold:.4g}, chosen on "
        f"the {op.chosen_on} split with float32 (sensitivity "
        f"{fmt(None if val is None else val.sensitivity, '.3f')}, specificity "
        f"{fmt(None if val is None else val.specificity, '.3f')}); every variant is judged "
        "there"
    )


def _diff(d: PairedDiff | None, name: str) -> str:
    if d is None or d.diff is None:
        return ""
    ci = d.ci95
    interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
    return f"{name} {d.diff:+.3f}{interval}"


def variant_lines(report: BuildReport) -> list[str]:
    """Per variant: paired differences from float32, changed decisions, calibration."""
    lines = []
    first = next(iter(report.metrics), None)
    for variant, m in report.metrics.items():
        parts = []
        vs = m.vs_float32 or {}
        diffs = [
            _diff(vs.get(k), n)
            for k, n in (("auroc", "AUROC"), ("sensitivity", "sens"), ("specificity", "spec"))
        ]
        if any(diffs):
            parts.append("vs float32 " + ", ".join(d for d in diffs if d))
        f = m.flips
        if f is not None and f.any_changed():
            parts.append(
                f"changed decisions: positives {f.positive_missed} missed, "
                f"{f.positive_found} found; negatives {f.negative_flagged} flagged, "
                f"{f.negative_cleared} cleared"
            )
        elif f is not None and variant != first:
            parts.append("no decision changed")
        cal = m.calibration
        if cal:
            parts.append(f"ECE {cal.ece:.3f}, Brier {cal.brier:.3f}")
        if parts:
            lines.append(f"{variant}: " + "; ".join(parts))
    return lines


def _devices(bench: BenchSummary | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    devices = bench.get("devices") if isinstance(bench, Mapping) else bench.devices
    return devices or {}


def device_bench_lines(
    bench: Mapping[str, BenchSummary] | Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, str]]:
    """One line per `--device`: each variant's p50 measured there, or why it was not.

    `bench` is the report's `bench` block, typed or as report.json holds it.
    """
    per_variant = {v: _devices(b) for v, b in bench.items()}
    names = [n for devices in per_variant.values() for n in devices]
    out = []
    for name in dict.fromkeys(names):
        entries = {v: devices[name] for v, devices in per_variant.items() if name in devices}
        first = next(iter(entries.values()))
        if first.get("status") in ("unreachable", "refused") and "latency_ms" not in first:
            out.append((name, f"{first['status']}: {first.get('reason')}"))
            continue
        dev = first.get("device") or {}
        p50 = ", ".join(
            f"{v} {fmt(e.get('latency_ms', {}).get('p50'), '.3g')}" for v, e in entries.items()
        )
        emulated = " (emulated: these timings mean nothing)" if dev.get("emulated") else ""
        out.append(
            (
                name,
                f"{dev.get('machine')} {dev.get('system')}, {dev.get('runtime')} "
                f"{dev.get('runtime_version')}: p50 ms {p50}{emulated}",
            )
        )
    return out


def variant_rows(report: BuildReport, markdown: bool = True) -> list[list[Any]]:
    """One row per variant (VARIANT_HEADER's columns), for report.md and the terminal."""
    rows = []
    for variant, art in report.artifacts.items():
        m = report.metrics.get(variant)
        b = report.bench.get(variant)
        lat = {} if b is None else b.latency_ms
        rows.append(
            [
                f"`{variant}`" if markdown else variant,
                _size(report, variant, art.bytes, " " if markdown else "\n"),
                # the terminal puts the interval under the value: the table stays narrow
                *(
                    with_ci(m, k, f, " " if markdown else "\n")
                    for k, f in (("auroc", ".4f"), ("sensitivity", ".3f"), ("specificity", ".3f"))
                ),
                fmt(None if m is None else m.accuracy, ".3f"),
                fmt(None if m is None else m.agreement, ".3f"),
                fmt(lat.get("p50"), ".3g"),
                fmt(lat.get("p99"), ".3g"),
                fmt(None if b is None else b.peak_rss_mb, ".1f"),
            ]
        )
    return rows


def flip_rows(report: BuildReport) -> list[list[Any]]:
    """Changed test decisions per variant, missed positives first (FLIP_CASES_SHOWN each)."""
    rows: list[list[Any]] = []
    for variant, m in report.metrics.items():
        cases = m.flips.cases if m.flips is not None else []
        names = m.class_names or []
        for c in cases[:FLIP_CASES_SHOWN]:
            change = c.flip.replace("_", " ")
            label = names[c.label] if c.label < len(names) else c.label
            rows.append([f"`{variant}`", c.index, label, change, c.float32, c.variant])
        if len(cases) > FLIP_CASES_SHOWN:
            more = len(cases) - FLIP_CASES_SHOWN
            rows.append([f"`{variant}`", f"... {more} more in report.json", "", "", "", ""])
    return rows


def gate_rows(gates: Gates | None) -> list[list[Any]]:
    """One row per gate check: name, against, measured, limit, result, detail."""
    return [
        [
            f"`{c.name}`",
            c.against,
            c.measured,
            c.limit,
            "pass" if c.passed else "FAIL",
            c.detail,
        ]
        for c in (gates.checks if gates is not None else [])
    ]


def auto_point(point: Mapping[str, Any], name: str) -> str:
    """One point of an auto search's curve (`--sparsity auto`, `--structured-sparsity
    auto`): its validation AUROC, the rates when judged, MACs and parameters when the
    search records them, and whether it was in budget."""
    side = point.get("resize")  # the speed search's input front, when it made it smaller
    text = f"{name} {point['sparsity']:g}" + (f" at input front {side}x{side}" if side else "")
    text += f": validation AUROC {fmt(point['val_auroc'])}"
    if "val_sensitivity" in point:
        text += (
            f", sensitivity {fmt(point.get('val_sensitivity'), '.3f')}, specificity "
            f"{fmt(point.get('val_specificity'), '.3f')}"
        )
    if "macs_after" in point:
        text += f", MACs {cell(point['macs_after'])}, params {cell(point['params_after'])}"
    if point["within_budget"]:
        return text + " (within budget)"
    missed = point.get("missed")
    return text + (f" (over budget: {'; '.join(missed)})" if missed else " (over budget)")


def structured_auto_points(auto: Mapping[str, Any]) -> list[str]:
    """`--structured-sparsity auto`: one text per channel fraction R tried, largest first."""
    return [auto_point(c, "R") for c in auto.get("curve", [])]


def structured_auto_line(auto: Mapping[str, Any]) -> str | None:
    """`--structured-sparsity auto` in one line: the points tried and the choice."""
    if not auto:
        return None
    chosen = auto.get("chosen_sparsity")
    choice = f"chose R {chosen:g}" if chosen is not None else "none in budget: not applied"
    return f"structured auto ({choice}): " + ("; ".join(structured_auto_points(auto)) or "-")


def speed_search_line(structured: Mapping[str, Any] | None) -> str | None:
    """`--speedup-target` in one line: the cut chosen, its predicted and measured speedup
    and int8 latency, the recipe and the seconds the search spent; None without."""
    st = structured or {}
    lat = st.get("latency")
    if not lat:
        return None
    ranking, recipe, seconds = lat["ranking"], lat["recipe"], lat["seconds"]
    text = (
        f"speed search (--speedup-target {lat['speedup_target']:g}, measured on {lat['runtime']}): "
    )
    if "warning" in lat:
        text += "no cut chosen (see warnings)"
    else:
        front = st.get("resize")
        text += (
            (
                f"input front {front['after'][0]}x{front['after'][1]} (was "
                f"{front['before'][0]}x{front['before'][1]}), "
                if front
                else ""
            )
            + f"R {st['auto']['chosen_sparsity']:g} at channel multiple "
            f"{st['channel_multiple']} with {len(st.get('dropped_blocks') or ())} residual "
            f"branches dropped, predicted {fmt(lat['predicted_speedup'], '.2f')}x "
            f"({fmt(lat['predicted_ms'], '.3g')} ms), measured "
            f"{fmt(lat['measured_speedup'], '.2f')}x ({fmt(lat['measured_ms'], '.3g')} ms) "
            f"against the unpruned int8 {fmt(lat['unpruned_ms'], '.3g')} ms"
        )
    ranked = len(ranking["candidates"])
    parts = ", ".join(
        f"{k.removesuffix('_s')} {v:.1f} s" for k, v in seconds.items() if k != "total_s"
    )
    return text + (
        f"; recipe {recipe['epochs']} epochs ({recipe['source']})"
        + (f", {ranked} cuts ranked by {ranking['epochs']}-epoch fine-tunes" if ranked else "")
        + f"; {seconds['total_s']:.1f} s ({parts})"
    )


def recommendation_lines(report: BuildReport) -> list[str]:
    """`ship VARIANT on TARGET: reason` for each measured target that should not ship int8."""
    out = []
    for target, rec in (report.recommendation or {}).items():
        if rec.ship is None or rec.ship == Variant.INT8.value:
            continue
        where = "this machine" if target == "local" else target.replace("device:", "device ")
        out.append(f"ship {rec.ship} on {where}: {rec.reason}")
    return out
