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
        + (f" ({p['sparsity_mode']})" if p.get("sparsity_mode") else "")
    )
    if p.get("note"):
        console.print(f"  {p['note']}")

    def edge(side: str) -> str:
        t = q[side]
        if t["scale"] is None:
            return f"{side} {t['dtype']}"
        return f"{side} {t['dtype']} scale={t['scale']:.6g} zp={t['zero_point']}"

    post = q["output"].get("postprocess", "none")
    console.print(
        f"int8: full_integer={q['full_integer']}, {edge('input')}, {edge('output')}"
        + (f" (host applies {post})" if post != "none" else "")
        + f", calibrated on {q['calibration_samples']} samples, recipe {q.get('recipe', '-')}"
    )
    if q.get("diagnosis"):
        d = q["diagnosis"]["output"]
        console.print(
            f"plain int8 missed the AUROC budget: {d.get('saturated_fraction', 0):.0%} of "
            f"validation outputs saturated, largest tie {d['largest_tie_fraction']:.0%}, "
            f"{d['distinct_levels']} distinct levels"
        )
        worst = q["diagnosis"]["worst_layers"]
        if isinstance(worst, str):
            console.print(f"  {worst}")
        else:
            for row in worst:
                console.print(f"  {row['op']:<16} {row['layer']:<48} RMSE/scale "
                              f"{_fmt(row['rmse_over_scale'], '.3f')}")
        for t in q["tried"]:
            console.print(f"  tried {t['name']:<28} val AUROC {_fmt(t['val_auroc'])}"
                          f"{'  <- meets budget' if t['meets_budget'] else ''}")
    for check in q.get("verification", []):
        if check["status"] != "ok":
            console.print(f"[red]runtime {check['target']}: {check['status']}[/red] "
                          f"{check['reason']}")
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
