"""sweep.md: the sweep's points, Pareto front and recommendation, for a reviewer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.release.report import Document, cell
from pipeline.release.report.schema import VariantMetrics
from pipeline.release.sweep_points import int8_value, label


def write_markdown(summary: Mapping[str, Any], path: Path) -> None:
    """sweep.md: every point on validation, the failed ones, the confirmed recommendation."""
    doc = Document("bedside-lite sweep")
    rec = summary["recommended"]
    doc.text(
        f"{len(summary['points'])} points on the validation split; grid "
        f"{json.dumps(summary['grid'])}; recommended: the "
        f"{'fastest' if summary['prefer'] == 'latency' else 'smallest'} point passing "
        "the gates."
    )
    rows = []
    for d in sorted(summary["points"], key=lambda d: int8_value(d, "bytes")):
        f32 = VariantMetrics.from_json(d["metrics"]["float32"], strict=False).auroc
        i8 = int8_value(d, "auroc")
        mark = "**recommended**" if rec and rec["key"] == d["key"] else ""
        rows.append(
            [
                label(d["params"]),
                f"{int8_value(d, 'bytes') / 1024:.1f} KB",
                i8,
                None if f32 is None or i8 is None else f32 - i8,
                int8_value(d, "sensitivity"),
                int8_value(d, "specificity"),
                int8_value(d, "p50"),
                "pass" if d["gates"]["passed"] else "FAIL",
                "yes" if d["pareto"] else "",
                mark,
            ]
        )
    doc.heading("Points")
    doc.table(
        (
            "point",
            "int8 size",
            "int8 AUROC",
            "AUROC drop",
            "sensitivity",
            "specificity",
            "p50 ms",
            "gates",
            "Pareto",
            "",
        ),
        rows,
    )
    if summary.get("failed"):
        doc.heading("Failed points")
        doc.text("Not in the table above; the same command runs them again.")
        doc.items([f"`{f['key']}` ({label(f['params'])}): {f['error']}" for f in summary["failed"]])
    doc.heading("Recommended")
    if rec is None:
        doc.text("No point passes the gates; relax the grid or the gates.")
    else:
        verdict = "passed" if rec["gates_passed"] else "FAILED"
        doc.text(
            f"`{rec['key']}` ({label(rec['params'])}) "
            f"confirmed on the test split: gates {verdict}; int8 AUROC "
            f"{cell(rec['test']['auroc'])}; full build in `{rec['out']}`."
        )
    path.write_text(doc.markdown(), encoding="utf-8")
