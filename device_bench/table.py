"""Plain-text table of a benchmark report (no dependency beyond the stdlib)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device_bench.profile import ModelProfile
from device_bench.report import BenchReport, ModelReport

_Column = tuple[str, Callable[[ModelReport], str], bool]  # header, cell, right-aligned


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _columns(compare: bool) -> list[_Column]:
    columns: list[_Column] = [
        ("model", lambda m: m.path, False),
        ("status", lambda m: m.status.value, False),
        ("runtime", lambda m: f"{m.runtime or '-'} {m.runtime_version or ''}".strip(), False),
        ("xnnpack", lambda m: "-" if m.xnnpack is None else ("yes" if m.xnnpack else "no"), False),
        ("runs", lambda m: str(m.runs) if m.runs else "-", True),
        ("p50 ms", lambda m: _number(m.latency_ms.p50 if m.latency_ms else None), True),
        ("mean ms", lambda m: _number(m.latency_ms.mean if m.latency_ms else None), True),
        ("p90 ms", lambda m: _number(m.latency_ms.p90 if m.latency_ms else None), True),
        ("p99 ms", lambda m: _number(m.latency_ms.p99 if m.latency_ms else None), True),
        ("init ms", lambda m: _number(m.init_ms), True),
        ("peak MiB", lambda m: _number(m.memory.peak_rss_mb if m.memory else None, ".1f"), True),
        ("model MiB", lambda m: _number(m.memory.model_mb if m.memory else None, ".1f"), True),
        ("file KiB", lambda m: _number(m.file_bytes / 1024 if m.file_bytes else None, ".1f"), True),
    ]
    if compare:
        columns.append(
            (
                "p50 x first",
                lambda m: _number(m.ratio_to_first["p50"] if m.ratio_to_first else None, ".3f"),
                True,
            )
        )
    return columns


def _aligned(headers: list[tuple[str, bool]], rows: list[list[str]]) -> list[str]:
    """Header, rule and rows as aligned columns; a header's flag right-aligns its column."""
    widths = [
        max(len(header), *(len(row[i]) for row in rows)) if rows else len(header)
        for i, (header, _) in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, right) in zip(cells, widths, headers, strict=True)
        ]
        return "  ".join(parts).rstrip()

    lines = [line([header for header, _ in headers])]
    lines.append(line(["-" * width for width in widths]))
    lines.extend(line(row) for row in rows)
    return lines


def _kib(value: int | None) -> str:
    return _number(None if value is None else value / 1024, ".1f")


def format_micro_table(reports: list[dict[str, Any]]) -> str:
    """Formats TFLM reports (``micro.MicroReport.to_json``): arena, flash, ops, timing.

    Args:
        reports: One JSON report per model.

    Returns:
        The text, ending with a newline; the timing column is this host's, not an MCU's.
    """
    headers = [
        ("model", False),
        ("status", False),
        ("arena KiB", True),
        ("estimate KiB", True),
        ("flash KiB", True),
        ("ops", True),
        ("host median ms", True),
    ]
    rows = [
        [
            r["path"],
            r["status"],
            _kib(r.get("arena_bytes")),
            _kib(r.get("arena_estimate_bytes")),
            _kib(r.get("flash_bytes")),
            str(len(r.get("ops") or ())),
            _number((r.get("host_timing") or {}).get("median_ms")),
        ]
        for r in reports
    ]
    lines = _aligned(headers, rows)
    for r in reports:
        if r.get("reason"):
            lines.append(f"{r['path']}: {r['status']}: {r['reason']}")
        if r.get("float_ops"):
            lines.append(f"{r['path']}: float ops: {', '.join(r['float_ops'])}")
        if r.get("host_timing"):
            lines.append(f"{r['path']}: timing: {r['host_timing']['label']}")
    return "\n".join(lines) + "\n"


def profile_lines(path: str, profile: ModelProfile) -> list[str]:
    """The top ops by share and the shares of QUANTIZE/DEQUANTIZE and of float ops.

    Args:
        path: The model's path, heading the lines.
        profile: Its per-op profile.

    Returns:
        One line per top op after a heading line.
    """
    ratio = _number(profile.sum_to_whole, ".2f")
    lines = [
        f"{path}: per-op p50 sum {profile.sum_ms:.4g} ms = {ratio} x whole "
        f"{profile.whole_p50_ms:.4g} ms (less {profile.overhead_ms:.3g} ms empty-invoke "
        f"overhead per op); QUANTIZE/DEQUANTIZE {profile.share_of(quantize=True):.1%}, "
        f"float ops {profile.share_of(float_ops=True):.1%}"
    ]
    for op in profile.top():
        lines.append(
            f"  #{op.index:<4} {op.op:<20} {op.dtype:<8} {op.p50_ms:9.4g} ms  {op.share:6.1%}"
        )
    return lines


def format_table(report: BenchReport) -> str:
    """Formats a report as aligned columns, then one line per note or failure.

    Args:
        report: The benchmark report.

    Returns:
        The text, ending with a newline.
    """
    columns = _columns(report.compare)
    rows = [[cell(model) for _, cell, _ in columns] for model in report.models]
    lines = _aligned([(header, right) for header, _, right in columns], rows)
    for model in report.models:
        if model.reason:
            lines.append(f"{model.path}: {model.status.value}: {model.reason}")
        if model.note:
            lines.append(f"{model.path}: note: {model.note}")
        if model.profile is not None:
            lines.extend(profile_lines(model.path, model.profile))
    return "\n".join(lines) + "\n"
