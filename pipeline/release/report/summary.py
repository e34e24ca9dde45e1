"""The terminal summary of a build: the variants table, then one line per stage and gate."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from pipeline.release.report.schema import BuildReport, PruningInfo, QuantizationInfo
from pipeline.release.report.subgroups import worst_group_line
from pipeline.release.report.tables import (
    cell,
    device_bench_lines,
    fmt,
    operating_point_line,
    recommendation_lines,
    speed_search_line,
    structured_auto_line,
    variant_lines,
    variant_rows,
)

COLUMNS = ("variant", "size", "AUROC", "sens", "spec", "acc", "agree", "p50 ms", "p99 ms", "RSS MB")


def print_summary(report: BuildReport, console: Any) -> None:
    """Prints the variants table, pruning and quantization lines, and warnings (the report's
    own text escaped: `[model] intended_use` or `[-0.07, 0]` is text, not rich markup)."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="bedside-lite build",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for row in variant_rows(report, markdown=False):
        table.add_row(*row)
    console.print(table)
    if any(m.ci95 for m in report.metrics.values()):
        first = report.first_metrics()
        boot = None if first is None else first.bootstrap
        console.print(
            f"[ ]: 95% intervals, stratified bootstrap of the test split "
            f"({'?' if boot is None else boot.replicates} resamples); differences are paired"
        )
    line = operating_point_line(report)
    if line:
        console.print(escape(line))
    for line in variant_lines(report):
        console.print(f"  {escape(line)}")
    line = worst_group_line(report)
    if line:
        console.print(escape(line))
    _print_pruning(report.pruning, console)
    _print_quantization(report.quantization, console)
    for name, line in device_bench_lines(report.bench):
        console.print(f"device {escape(name)}: {escape(line)}")
    for line in recommendation_lines(report):
        console.print(f"[bold]{escape(line)}[/bold]")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}")
    gates = report.gates
    if gates and gates.checks:
        failed = gates.failed()
        total = len(gates.checks)
        console.print(
            f"gates: [green]all {total} passed[/green]"
            if not failed
            else f"gates: [red]{len(failed)} of {total} failed[/red]"
        )
        for check in gates.checks:
            mark = "ok  " if check.passed else "FAIL"
            console.print(
                f"  {mark} {check.name:<27} {check.against:<19} measured "
                f"{cell(check.measured)} limit {cell(check.limit)}"
            )


def _print_pruning(p: PruningInfo, console: Any) -> None:
    tau = "per layer" if p.threshold is None else f"{p.threshold:.6g}"
    console.print(
        f"pruning: threshold {tau}, target sparsity {fmt(p.target_sparsity, '.3f')}, "
        f"achieved {p.achieved_sparsity:.3f} over {len(p.layers)} kernels"
        + (f" ({p.sparsity_mode})" if p.sparsity_mode else "")
    )
    if p.note:
        console.print(f"  {escape(p.note)}")
    auto = p.auto
    if auto.get("chosen_sparsity") and auto.get("reason"):
        console.print(f"  auto: {escape(auto['reason'])}")
    line = structured_auto_line(p.structured_auto)
    if line:
        console.print(escape(line))
    st = p.structured
    line = speed_search_line(st)
    if line:
        console.print(escape(line))
    if st and st["method"] != "none":
        layers = st.get("layers", [])
        narrowed = sum(
            1 for r in layers if 0 < (r["channels_after"] or 0) < (r["channels_before"] or 0)
        )
        console.print(
            f"structured: {len(st.get('dropped_blocks', []))} residual branches removed, "
            f"{narrowed} layers narrowed, MACs "
            f"{st['macs_before']:,} -> {st['macs_after']:,}, params {st['params_before']:,} "
            f"-> {st['params_after']:,}"
            + (f", {len(st['skipped'])} layers left whole" if st.get("skipped") else "")
        )


def _plain_missed(q: QuantizationInfo) -> str:
    """Which validation budget plain int8 missed, by how much (its `tried` entry)."""
    plain = q.tried[0] if q.tried else {}
    if plain.get("decision") is not None:
        return str(plain["reason"]).split(" -- ")[0]
    drop, budget = plain.get("val_auroc_drop"), q.doc.get("max_auroc_drop")
    if drop is not None and budget is not None and drop > budget:
        return f"its validation AUROC budget (drop {drop:.4f} over {budget:g})"
    return "its validation sensitivity, specificity or Brier budget (see tried)"


def _print_quantization(q: QuantizationInfo, console: Any) -> None:
    def edge(side: str) -> str:
        t = q.tensor(side)
        if t["scale"] is None:
            return f"{side} {t['dtype']}"
        return f"{side} {t['dtype']} scale={t['scale']:.6g} zp={t['zero_point']}"

    post = q.postprocess
    console.print(
        f"int8: full_integer={q.full_integer}, {edge('input')}, {edge('output')}"
        + (f" (host applies {post})" if post != "none" else "")
        + f", calibrated on {q.calibration_samples} samples, recipe {q.recipe}"
    )
    if q.diagnosis:
        d = q.diagnosis["output"]
        console.print(
            f"plain int8 missed {escape(_plain_missed(q))}: "
            f"{d.get('saturated_fraction', 0):.0%} of validation outputs saturated, "
            f"largest tie {d['largest_tie_fraction']:.0%}, "
            f"{d['distinct_levels']} distinct levels"
        )
        worst = q.diagnosis["worst_layers"]
        if isinstance(worst, str):
            console.print(f"  {escape(worst)}")
        else:
            for row in worst:
                console.print(
                    f"  {row['op']:<16} {row['layer']:<48} RMSE/scale "
                    f"{fmt(row['rmse_over_scale'], '.3f')}"
                )
        for t in q.tried:
            console.print(
                f"  tried {t['name']:<28} val AUROC {fmt(t['val_auroc'])}"
                + (
                    f" sensitivity {fmt(t['val_sensitivity'], '.3f')}"
                    if "val_sensitivity" in t
                    else ""
                )
                + f"{'  <- meets budget' if t['meets_budget'] else ''}"
                + (f"  {t['decision']}: {escape(str(t['reason']))}" if t.get("decision") else "")
            )
    for check in q.verification:
        if check["status"] != "ok":
            console.print(
                f"[red]runtime {check['target']}: {check['status']}[/red] "
                f"{escape(str(check['reason']))}"
            )
