"""report.md and report.html: a small document model, and a build report's content in it."""

from __future__ import annotations

import html as html_mod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.release.report.schema import BenchOk, BuildReport, Gates
from pipeline.release.report.subgroups import add_section as add_subgroups
from pipeline.release.report.tables import (
    VARIANT_HEADER,
    auto_point,
    cell,
    device_bench_lines,
    flip_rows,
    fmt,
    gate_rows,
    micro_line,
    operating_point_line,
    recommendation_lines,
    structured_auto_points,
    variant_lines,
    variant_rows,
)


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


def _td(text: str) -> str:
    cls = ' class="fail"' if text == "FAIL" else ' class="pass"' if text == "pass" else ""
    return f"<td{cls}>{_inline_html(text)}</td>"


def build_document(report: BuildReport, plots: dict[str, str], notes: list[str]) -> Document:
    """The report's content, independent of Markdown or HTML."""
    doc = Document("bedside-lite build report")
    gates = report.gates or Gates(passed=True, checks=[], baseline=None)
    _intro(doc, report, gates)
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
    add_subgroups(doc, report)
    if gates.checks:
        doc.heading("Gates")
        if gates.baseline:
            doc.text(f"Baseline: `{gates.baseline}`.")
        doc.table(("gate", "against", "measured", "limit", "result", "detail"), gate_rows(gates))
    doc.heading("Plots")
    for name, title in plots.items():
        doc.image(name, title)
    doc.items(notes)
    _confusion_matrices(doc, report)
    doc.heading("Pruning and quantization")
    doc.items(_stage_items(report))
    _profiles(doc, report)
    if report.warnings:
        doc.heading("Warnings")
        doc.items(report.warnings)
    prov = report.provenance
    if prov:
        doc.heading("Provenance")
        doc.text(
            f"`{prov.manifest}` lists the sha256 of the inputs and of every artifact; "
            f"`{prov.job}` re-runs this build. Each `.tflite` embeds its inputs, "
            f"versions and job as metadata `{prov.tflite_metadata}` "
            "(`bedside-lite inspect FILE`)."
        )
    return doc


def _profiles(doc: Document, report: BuildReport) -> None:
    """`--profile`: each variant's top ops by share and its QUANTIZE/DEQUANTIZE and float
    shares (device_bench's own lines, one item each)."""
    from pipeline.device.client import profile_lines

    measured = {
        variant: summary.profile
        for variant, summary in report.bench.items()
        if isinstance(summary, BenchOk) and summary.profile
    }
    if not measured:
        return
    doc.heading("Per-op latency (--profile)")
    for variant, profile in measured.items():
        doc.items(profile_lines(variant, profile))


def _intro(doc: Document, report: BuildReport, gates: Gates) -> None:
    """The verdict, then model, data, how the metrics were computed, the operating point."""
    model, data = report.model, report.data
    failed = gates.failed()
    verdict = (
        "no gates configured"
        if not gates.checks
        else "**all gates passed**"
        if not failed
        else f"**{len(failed)} of {len(gates.checks)} gates FAILED**"
    )
    positive = data.positive_class if data.positive_class_name is None else data.positive_class_name
    threshold = next(
        (m.decision_threshold for m in report.metrics.values() if m.decision_threshold is not None),
        None,
    )
    first = report.first_metrics()
    boot = None if first is None else first.bootstrap
    op_line = operating_point_line(report)
    doc.text(f"Release verdict: {verdict}.")
    for line in recommendation_lines(report):
        doc.text(f"**{line}**")
    doc.items(
        [
            f"model: {model.source} ({model.output_kind}, {model.parameters} parameters, "
            f"input {model.input_shape})",
            f"data: {data.source}; positive class `{positive}`"
            + (f" at P >= {threshold:.4g}" if threshold is not None else ""),
            "metrics on the test split, computed by running each `.tflite` file"
            + (
                "; [low, high] is the 95% interval of a stratified bootstrap "
                f"({boot.replicates} resamples of the test split, seed {boot.seed}), "
                "differences from float32 are paired (the same resampled cases)"
                if boot
                else ""
            ),
            *([op_line] if op_line else []),
        ]
    )


def _confusion_matrices(doc: Document, report: BuildReport) -> None:
    doc.heading("Confusion matrices (test split)")
    for variant, metrics in report.metrics.items():
        matrix = metrics.confusion_matrix
        if not matrix:
            continue
        names = metrics.class_names or [str(i) for i in range(len(matrix))]
        doc.text(f"**{variant}** (rows: true class, columns: predicted)")
        doc.table(
            ["true \\ predicted", *names],
            [[name, *row] for name, row in zip(names, matrix, strict=False)],
        )


def _structured_auto_items(auto: dict[str, Any]) -> list[str]:
    """`--structured-sparsity auto`: its reason, then one item per channel fraction tried."""
    if not auto:
        return []
    return [
        f"structured auto: {auto['reason']}",
        *(f"structured auto {point}" for point in structured_auto_points(auto)),
    ]


def _stage_items(report: BuildReport) -> list[str]:
    """Pruning (and its auto search), int8, runtime checks and devices, one item each."""
    p, q = report.pruning, report.quantization
    auto = p.auto
    return [
        f"pruning: threshold {cell(p.threshold)}, target sparsity "
        f"{cell(p.target_sparsity)}, achieved {fmt(p.achieved_sparsity, '.3f')}"
        + (f" ({p.sparsity_mode})" if p.sparsity_mode else ""),
        *([f"auto sparsity: {auto['reason']}"] if auto.get("reason") else []),
        *(auto_point(c, "auto sparsity") for c in auto.get("curve", [])),
        *_structured_auto_items(p.structured_auto),
        f"int8: full_integer={q.full_integer}, recipe {q.recipe}, "
        f"calibrated on {q.calibration_samples} samples, activations "
        f"{q.activations}",
        *(
            f"runtime {c['target']}: {c['status']}"
            + (f" ({c['reason']})" if c.get("reason") else "")
            for c in q.verification
        ),
        *(
            f"int8 recipe {t['name']}: {t['decision']} ({t['reason']})"
            for t in q.tried
            if t.get("decision")
        ),
        *([line] if (line := micro_line(report)) else []),
        *(f"device {n}: {line}" for n, line in device_bench_lines(report.bench)),
    ]
