"""The human report of a build: a compact table on the terminal, and `report.md` (with
`--html`, `report.html`) with PNG plots beside the artifacts, readable as a CI artifact.

Plots need matplotlib (`pip install 'bedside-lite[report]'`); without it they are skipped
and the report says so.
"""

from __future__ import annotations

import html as html_mod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
LATENCY_PNG = "latency.png"
SIZE_AUROC_PNG = "size_auroc.png"
CONFUSION_PNG = "confusion.png"
RELIABILITY_PNG = "reliability.png"
FLIP_CASES_SHOWN = 20  # changed cases listed per variant in report.md; all in report.json
PLOTS_MISSING = "plots skipped: matplotlib is not installed (pip install 'bedside-lite[report]')"


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _with_ci(m: dict[str, Any], metric: str, spec: str, sep: str = " ") -> str:
    """`0.907 [0.81, 0.98]`: a value with its 95% interval, when the build computed one."""
    ci = (m.get("ci95") or {}).get(metric)
    text = _fmt(m.get(metric), spec)
    return text if not ci or m.get(metric) is None else f"{text}{sep}[{ci[0]:.2f}, {ci[1]:.2f}]"


def operating_point_line(report: dict[str, Any]) -> str | None:
    """`operating point: sensitivity=0.95 -> P(positive) >= 0.3124 (validation ...)`."""
    op = report.get("operating_point")
    if not op or op.get("threshold") is None:
        return None
    val = op.get("validation") or {}
    return (
        f"operating point: {op['rule']} -> P(positive) >= {op['threshold']:.4g}, chosen on "
        f"the {op['chosen_on']} split with float32 (sensitivity "
        f"{_fmt(val.get('sensitivity'), '.3f')}, specificity "
        f"{_fmt(val.get('specificity'), '.3f')}); every variant is judged there"
    )


def _diff(d: dict[str, Any] | None, name: str) -> str:
    if not d or d.get("diff") is None:
        return ""
    ci = d.get("ci95")
    interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
    return f"{name} {d['diff']:+.3f}{interval}"


def variant_lines(report: dict[str, Any]) -> list[str]:
    """Per variant: paired differences from float32, changed decisions, calibration."""
    lines = []
    for variant, m in report["metrics"].items():
        parts = []
        vs = m.get("vs_float32") or {}
        diffs = [_diff(vs.get(k), n) for k, n in (("auroc", "AUROC"), ("sensitivity", "sens"))]
        diffs.append(_diff(vs.get("specificity"), "spec"))
        if any(diffs):
            parts.append("vs float32 " + ", ".join(d for d in diffs if d))
        f = m.get("flips")
        kinds = ("positive_missed", "positive_found", "negative_flagged", "negative_cleared")
        if f and any(f.get(k) for k in kinds):
            parts.append(
                f"changed decisions: positives {f['positive_missed']} missed, "
                f"{f['positive_found']} found; negatives {f['negative_flagged']} flagged, "
                f"{f['negative_cleared']} cleared"
            )
        elif f is not None and variant != next(iter(report["metrics"])):
            parts.append("no decision changed")
        cal = m.get("calibration")
        if cal:
            parts.append(f"ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}")
        if parts:
            lines.append(f"{variant}: " + "; ".join(parts))
    return lines


def print_summary(report: dict[str, Any], console: Any) -> None:
    """Prints the variants table, pruning and quantization lines, and warnings."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="bedside-lite build",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    for column in (
        "variant",
        "size",
        "AUROC",
        "sens",
        "spec",
        "acc",
        "agree",
        "p50 ms",
        "p99 ms",
        "RSS MB",
    ):
        table.add_column(column, justify="left" if column == "variant" else "right", no_wrap=True)
    for row in variant_rows(report, markdown=False):
        table.add_row(*row)
    console.print(table)
    if any(m.get("ci95") for m in report["metrics"].values()):
        boot = next((m.get("bootstrap") for m in report["metrics"].values()), None) or {}
        console.print(
            f"[ ]: 95% intervals, stratified bootstrap of the test split "
            f"({boot.get('replicates', '?')} resamples); differences are paired"
        )
    line = operating_point_line(report)
    if line:
        console.print(line)
    for line in variant_lines(report):
        console.print(f"  {line}")
    p, q = report["pruning"], report["quantization"]
    tau = "per layer" if p["threshold"] is None else f"{p['threshold']:.6g}"
    console.print(
        f"pruning: threshold {tau}, target sparsity {_fmt(p['target_sparsity'], '.3f')}, "
        f"achieved {p['achieved_sparsity']:.3f} over {len(p['layers'])} kernels"
        + (f" ({p['sparsity_mode']})" if p.get("sparsity_mode") else "")
    )
    if p.get("note"):
        console.print(f"  {p['note']}")
    auto = p.get("auto")
    if auto and auto.get("chosen_sparsity") and auto.get("reason"):
        console.print(f"  auto: {auto['reason']}")
    st = p.get("structured")
    if st:
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
                console.print(
                    f"  {row['op']:<16} {row['layer']:<48} RMSE/scale "
                    f"{_fmt(row['rmse_over_scale'], '.3f')}"
                )
        for t in q["tried"]:
            console.print(
                f"  tried {t['name']:<28} val AUROC {_fmt(t['val_auroc'])}"
                + (
                    f" sensitivity {_fmt(t['val_sensitivity'], '.3f')}"
                    if "val_sensitivity" in t
                    else ""
                )
                + f"{'  <- meets budget' if t['meets_budget'] else ''}"
            )
    for check in q.get("verification", []):
        if check["status"] != "ok":
            console.print(
                f"[red]runtime {check['target']}: {check['status']}[/red] {check['reason']}"
            )
    for name, line in device_bench_lines(report.get("bench", {})):
        console.print(f"device {name}: {line}")
    for warning in report.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")
    gates = report.get("gates")
    if gates and gates["checks"]:
        failed = [c for c in gates["checks"] if not c["passed"]]
        total = len(gates["checks"])
        console.print(
            f"gates: [green]all {total} passed[/green]"
            if not failed
            else f"gates: [red]{len(failed)} of {total} failed[/red]"
        )
        for check in gates["checks"]:
            mark = "ok  " if check["passed"] else "FAIL"
            console.print(
                f"  {mark} {check['name']:<27} {check['against']:<19} measured "
                f"{cell(check['measured'])} limit {cell(check['limit'])}"
            )


# --- report.md / report.html -----------------------------------------------------------


@dataclass
class Document:
    """A small document model rendered to Markdown and to HTML alike."""

    title: str
    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def items(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", list(header), [[cell(v) for v in r] for r in rows]))

    def image(self, path: str, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "h2":
                out += [f"## {block[1]}", ""]
            elif kind == "p":
                out += [block[1], ""]
            elif kind == "ul":
                out += [f"- {item}" for item in block[1]] + [""]
            elif kind == "table":
                header, rows = block[1], block[2]
                out.append("| " + " | ".join(header) + " |")
                out.append(
                    "|"
                    + "|".join(" --- " if i == 0 else " ---: " for i in range(len(header)))
                    + "|"
                )
                out += [
                    "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows
                ]
                out.append("")
            elif kind == "img":
                out += [f"![{block[2]}]({block[1]})", ""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        esc = html_mod.escape
        out = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
            "padding:.2em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
            ".fail{color:#b00;font-weight:bold}.pass{color:#070}img{max-width:100%}</style>",
            "</head><body>",
            f"<h1>{esc(self.title)}</h1>",
        ]
        for block in self.blocks:
            kind = block[0]
            if kind == "h2":
                out.append(f"<h2>{esc(block[1])}</h2>")
            elif kind == "p":
                out.append(f"<p>{_inline_html(block[1])}</p>")
            elif kind == "ul":
                out.append(
                    "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in block[1]) + "</ul>"
                )
            elif kind == "table":
                head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
                body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in block[2])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif kind == "img":
                out.append(f'<p><img src="{esc(block[1])}" alt="{esc(block[2])}"></p>')
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escapes text, keeping Markdown's **bold** and `code` (all the report uses)."""
    parts = html_mod.escape(text).split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = text.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _td(cell: str) -> str:
    cls = ' class="fail"' if cell == "FAIL" else ' class="pass"' if cell == "pass" else ""
    return f"<td{cls}>{_inline_html(cell)}</td>"


def cell(value: Any) -> str:
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


def device_bench_lines(bench: dict[str, Any]) -> list[tuple[str, str]]:
    """One line per `--device`: each variant's p50 measured there, or why it was not."""
    names = [n for b in bench.values() for n in (b.get("devices") or {})]
    out = []
    for name in dict.fromkeys(names):
        entries = {v: b["devices"][name] for v, b in bench.items() if name in b.get("devices", {})}
        first = next(iter(entries.values()))
        if first.get("status") in ("unreachable", "refused") and "latency_ms" not in first:
            out.append((name, f"{first['status']}: {first.get('reason')}"))
            continue
        dev = first.get("device") or {}
        p50 = ", ".join(
            f"{v} {_fmt(e.get('latency_ms', {}).get('p50'), '.3g')}" for v, e in entries.items()
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


def variant_rows(report: dict[str, Any], markdown: bool = True) -> list[list[Any]]:
    """One row per variant (VARIANT_HEADER's columns), for report.md and the terminal."""
    rows = []
    for variant, art in report["artifacts"].items():
        m = report["metrics"].get(variant, {})
        b = report.get("bench", {}).get(variant, {})
        lat = b.get("latency_ms", {})
        rows.append(
            [
                f"`{variant}`" if markdown else variant,
                _kb(art.get("bytes")),
                # the terminal puts the interval under the value: the table stays narrow
                *(
                    _with_ci(m, k, f, " " if markdown else "\n")
                    for k, f in (("auroc", ".4f"), ("sensitivity", ".3f"), ("specificity", ".3f"))
                ),
                _fmt(m.get("accuracy"), ".3f"),
                _fmt(m.get("agreement"), ".3f"),
                _fmt(lat.get("p50"), ".3g"),
                _fmt(lat.get("p99"), ".3g"),
                _fmt(b.get("peak_rss_mb"), ".1f"),
            ]
        )
    return rows


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


def flip_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Changed test decisions per variant, missed positives first (FLIP_CASES_SHOWN each)."""
    rows: list[list[Any]] = []
    for variant, m in report["metrics"].items():
        cases = (m.get("flips") or {}).get("cases") or []
        names = m.get("class_names") or []
        for c in cases[:FLIP_CASES_SHOWN]:
            change = c.get("flip", "").replace("_", " ")
            label = names[c["label"]] if c["label"] < len(names) else c["label"]
            rows.append([f"`{variant}`", c["index"], label, change, c["float32"], c["variant"]])
        if len(cases) > FLIP_CASES_SHOWN:
            more = len(cases) - FLIP_CASES_SHOWN
            rows.append([f"`{variant}`", f"... {more} more in report.json", "", "", "", ""])
    return rows


def gate_rows(gates: dict[str, Any] | None) -> list[list[Any]]:
    return [
        [
            f"`{c['name']}`",
            c["against"],
            c["measured"],
            c["limit"],
            "pass" if c["passed"] else "FAIL",
            c["detail"],
        ]
        for c in (gates or {}).get("checks", [])
    ]


def build_document(report: dict[str, Any], plots: dict[str, str], notes: list[str]) -> Document:
    """The report's content, independent of Markdown or HTML."""
    doc = Document("bedside-lite build report")
    model, data = report["model"], report["data"]
    gates = report.get("gates") or {"checks": [], "passed": True}
    failed = [c for c in gates["checks"] if not c["passed"]]
    verdict = (
        "no gates configured"
        if not gates["checks"]
        else "**all gates passed**"
        if not failed
        else f"**{len(failed)} of {len(gates['checks'])} gates FAILED**"
    )
    positive = data.get("positive_class_name")
    positive = data.get("positive_class") if positive is None else positive
    threshold = next(
        (
            m.get("decision_threshold")
            for m in report["metrics"].values()
            if m.get("decision_threshold") is not None
        ),
        None,
    )
    boot = next((m.get("bootstrap") for m in report["metrics"].values()), None)
    op_line = operating_point_line(report)
    doc.text(f"Release verdict: {verdict}.")
    doc.items(
        [
            f"model: {model['source']} ({model['output_kind']}, {model['parameters']} parameters, "
            f"input {model['input_shape']})",
            f"data: {data.get('source')}; positive class `{positive}`"
            + (f" at P >= {threshold:.4g}" if threshold is not None else ""),
            "metrics on the test split, computed by running each `.tflite` file"
            + (
                "; [low, high] is the 95% interval of a stratified bootstrap "
                f"({boot['replicates']} resamples of the test split, seed {boot['seed']}), "
                "differences from float32 are paired (the same resampled cases)"
                if boot
                else ""
            ),
            *([op_line] if op_line else []),
        ]
    )
    doc.heading("Variants")
    doc.table(VARIANT_HEADER, variant_rows(report))
    doc.items(variant_lines(report))
    changed = flip_rows(report)
    if changed:
        doc.text(
            "Changed decisions (test split; P = probability of the positive class, missed "
            "positives first):"
        )
        doc.table(("variant", "case", "label", "change", "P float32", "P variant"), changed)
    if gates["checks"]:
        doc.heading("Gates")
        if gates.get("baseline"):
            doc.text(f"Baseline: `{gates['baseline']}`.")
        doc.table(("gate", "against", "measured", "limit", "result", "detail"), gate_rows(gates))
    doc.heading("Plots")
    for name, title in plots.items():
        doc.image(name, title)
    doc.items(notes)
    doc.heading("Confusion matrices (test split)")
    for variant, metrics in report["metrics"].items():
        matrix = metrics.get("confusion_matrix")
        if not matrix:
            continue
        names = metrics.get("class_names") or [str(i) for i in range(len(matrix))]
        doc.text(f"**{variant}** (rows: true class, columns: predicted)")
        doc.table(
            ["true \\ predicted", *names],
            [[name, *row] for name, row in zip(names, matrix, strict=False)],
        )
    doc.heading("Pruning and quantization")
    p, q = report["pruning"], report["quantization"]
    auto = p.get("auto") or {}
    doc.items(
        [
            f"pruning: threshold {cell(p.get('threshold'))}, target sparsity "
            f"{cell(p.get('target_sparsity'))}, achieved {_fmt(p.get('achieved_sparsity'), '.3f')}"
            + (f" ({p['sparsity_mode']})" if p.get("sparsity_mode") else ""),
            *([f"auto sparsity: {auto['reason']}"] if auto.get("reason") else []),
            *(
                f"auto sparsity {c['sparsity']:g}: validation AUROC {_fmt(c['val_auroc'])}"
                + (
                    f", sensitivity {_fmt(c.get('val_sensitivity'), '.3f')}, specificity "
                    f"{_fmt(c.get('val_specificity'), '.3f')}"
                    if "val_sensitivity" in c
                    else ""
                )
                + (" (within budget)" if c["within_budget"] else " (over budget)")
                for c in auto.get("curve", [])
            ),
            f"int8: full_integer={q.get('full_integer')}, recipe {q.get('recipe', '-')}, "
            f"calibrated on {q.get('calibration_samples')} samples, activations "
            f"{q.get('activations')}",
            *(
                f"runtime {c['target']}: {c['status']}"
                + (f" ({c['reason']})" if c.get("reason") else "")
                for c in q.get("verification", [])
            ),
            *(f"device {n}: {line}" for n, line in device_bench_lines(report.get("bench", {}))),
        ]
    )
    if report.get("warnings"):
        doc.heading("Warnings")
        doc.items(report["warnings"])
    prov = report.get("provenance")
    if prov:
        doc.heading("Provenance")
        doc.text(
            f"`{prov['manifest']}` lists the sha256 of the inputs and of every artifact; "
            f"`{prov['job']}` re-runs this build. Each `.tflite` embeds its inputs, "
            f"versions and job as metadata `{prov['tflite_metadata']}` "
            "(`bedside-lite inspect FILE`)."
        )
    return doc


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version: stable bytes


def write_plots(report: dict[str, Any], out_dir: Path) -> tuple[dict[str, str], list[str]]:
    """PNG plots of a build report; returns {file: title} and notes on what was skipped."""
    plt = _pyplot()
    if plt is None:
        return {}, [PLOTS_MISSING]
    plots: dict[str, str] = {}
    notes: list[str] = []
    bench = {v: b for v, b in report.get("bench", {}).items() if b.get("status") == "ok"}
    if bench:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        keys = [
            k for k in ("p50", "p90", "p99") if all(k in b["latency_ms"] for b in bench.values())
        ]
        width = 0.8 / max(len(keys), 1)
        for i, key in enumerate(keys):
            ax.bar(
                [j + i * width for j in range(len(bench))],
                [b["latency_ms"][key] for b in bench.values()],
                width,
                label=key,
            )
        ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(bench))], list(bench))
        ax.set_ylabel("latency per invoke (ms)")
        ax.set_title("latency percentiles per variant")
        ax.legend()
        _save(fig, out_dir / LATENCY_PNG)
        plt.close(fig)
        plots[LATENCY_PNG] = "latency p50/p90/p99 per variant"
    else:
        notes.append("latency plot skipped: the bench did not run (--no-bench) or failed")
    points = [
        (v, a["bytes"] / 1024, report["metrics"].get(v, {}).get("auroc"))
        for v, a in report["artifacts"].items()
        if a.get("bytes")
    ]
    points = [p for p in points if p[2] is not None]
    if points:
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for name, kb, auroc in points:
            ax.scatter([kb], [auroc], s=40)
            ax.annotate(name, (kb, auroc), textcoords="offset points", xytext=(5, 5))
        ax.margins(x=0.25, y=0.2)
        ax.set_xlabel("file size (KB)")
        ax.set_ylabel("test AUROC")
        ax.set_title("size vs AUROC")
        _save(fig, out_dir / SIZE_AUROC_PNG)
        plt.close(fig)
        plots[SIZE_AUROC_PNG] = "size vs AUROC per variant"
    matrices = {v: m for v, m in report["metrics"].items() if m.get("confusion_matrix")}
    if matrices:
        fig, axes = plt.subplots(
            1, len(matrices), figsize=(3.2 * len(matrices), 3.2), squeeze=False
        )
        for ax, (variant, m) in zip(axes[0], matrices.items(), strict=True):
            cm = m["confusion_matrix"]
            names = m.get("class_names") or [str(i) for i in range(len(cm))]
            ax.imshow(cm, cmap="Blues")
            for i, row in enumerate(cm):
                for j, count in enumerate(row):
                    ax.text(j, i, str(count), ha="center", va="center")
            ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
            ax.set_yticks(range(len(names)), names)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(variant)
        _save(fig, out_dir / CONFUSION_PNG)
        plt.close(fig)
        plots[CONFUSION_PNG] = "confusion matrices (test split)"
    curves = {v: m["calibration"] for v, m in report["metrics"].items() if m.get("calibration")}
    if curves:
        fig, ax = plt.subplots(figsize=(4.8, 4.0))
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
        for variant, cal in curves.items():
            r = cal["reliability"]
            ax.plot(
                r["mean_predicted"],
                r["observed"],
                marker="o",
                label=f"{variant} (ECE {cal['ece']:.3f})",
            )
        basis = next(iter(curves.values())).get("basis", "probability")
        ax.set_xlabel(f"mean predicted ({basis})")
        ax.set_ylabel("observed frequency")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"reliability ({next(iter(curves.values()))['bins']} bins, test split)")
        ax.legend(fontsize="small")
        _save(fig, out_dir / RELIABILITY_PNG)
        plt.close(fig)
        plots[RELIABILITY_PNG] = "reliability diagram (calibration, test split)"
    return plots, notes


def write_documents(report: dict[str, Any], out_dir: Path, html: bool = False) -> list[Path]:
    """Writes report.md (and report.html) with its plots into `out_dir`."""
    plots, notes = write_plots(report, out_dir)
    doc = build_document(report, plots, notes)
    written = [out_dir / name for name in plots]
    (out_dir / REPORT_MD).write_text(doc.markdown(), encoding="utf-8")
    written.append(out_dir / REPORT_MD)
    if html:
        (out_dir / REPORT_HTML).write_text(doc.html(), encoding="utf-8")
        written.append(out_dir / REPORT_HTML)
    return written
