"""The human summary of a build report: a compact table on the terminal."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def print_summary(report: dict[str, Any], console: Any) -> None:
    """Prints the variants table, pruning and quantization lines, and warnings."""
    from rich import box
    from rich.table import Table

    table = Table(title="bedside-lite build", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False)
    for column in ("variant", "bytes", "AUROC", "acc", "sens", "spec", "agree",
                   "p50 ms", "p99 ms", "RSS MB"):
        table.add_column(column, justify="left" if column == "variant" else "right",
                         no_wrap=True)
    for variant, art in report["artifacts"].items():
        m = report["metrics"].get(variant, {})
        b = report["bench"].get(variant, {})
        lat = b.get("latency_ms", {})
        table.add_row(
            variant, f"{art['bytes']}", _fmt(m.get("auroc")), _fmt(m.get("accuracy")),
            _fmt(m.get("sensitivity"), ".3f"), _fmt(m.get("specificity"), ".3f"),
            _fmt(m.get("agreement"), ".3f"), _fmt(lat.get("p50"), ".4f"),
            _fmt(lat.get("p99"), ".4f"), _fmt(b.get("peak_rss_mb"), ".1f"),
        )
    console.print(table)
    p, q = report["pruning"], report["quantization"]
    tau = "per layer" if p["threshold"] is None else f"{p['threshold']:.6g}"
    console.print(
        f"pruning: threshold {tau}, target sparsity {_fmt(p['target_sparsity'], '.3f')}, "
        f"achieved {p['achieved_sparsity']:.3f} over {len(p['layers'])} kernels"
    )
    console.print(
        f"int8: full_integer={q['full_integer']}, input {q['input']['dtype']} "
        f"scale={q['input']['scale']:.6g} zp={q['input']['zero_point']}, output "
        f"{q['output']['dtype']} scale={q['output']['scale']:.6g} zp={q['output']['zero_point']}"
        f", calibrated on {q['calibration_samples']} samples"
    )
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
