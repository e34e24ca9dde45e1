"""The human report of a build: a compact table on the terminal, and `report.md` (with
`--html`, `report.html`) with PNG plots beside the artifacts, readable as a CI artifact.

`schema` holds the typed report (report.json), `summary` the terminal table, `document`
report.md/report.html, `plots` the PNG files, `tables` the rows they share. Plots need
matplotlib (`pip install 'bedside-lite[report]'`); without it they are skipped and the
report says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.release.report.document import Document, build_document
from pipeline.release.report.plots import (
    CONFUSION_PNG,
    LATENCY_PNG,
    RELIABILITY_PNG,
    SIZE_AUROC_PNG,
    write_plots,
)
from pipeline.release.report.schema import BuildReport
from pipeline.release.report.summary import print_summary as _print_summary
from pipeline.release.report.tables import (
    FLIP_CASES_SHOWN,
    VARIANT_HEADER,
    cell,
    device_bench_lines,
    flip_rows,
    gate_rows,
    operating_point_line,
    variant_lines,
    variant_rows,
)

REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_MISSING = "plots skipped: matplotlib is not installed (pip install 'bedside-lite[report]')"

__all__ = [
    "CONFUSION_PNG",
    "FLIP_CASES_SHOWN",
    "LATENCY_PNG",
    "PLOTS_MISSING",
    "RELIABILITY_PNG",
    "REPORT_HTML",
    "REPORT_MD",
    "SIZE_AUROC_PNG",
    "VARIANT_HEADER",
    "BuildReport",
    "Document",
    "build_document",
    "cell",
    "device_bench_lines",
    "flip_rows",
    "gate_rows",
    "operating_point_line",
    "print_summary",
    "variant_lines",
    "variant_rows",
    "write_documents",
    "write_plots",
]


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def print_summary(report: BuildReport | Mapping[str, Any], console: Any) -> None:
    """Prints the variants table, pruning and quantization lines, and warnings.

    Args:
        report: the build's report, typed or as report.json holds it.
        console: a rich Console.
    """
    _print_summary(BuildReport.coerce(report), console)


def write_documents(
    report: BuildReport | Mapping[str, Any], out_dir: Path, html: bool = False
) -> list[Path]:
    """Writes report.md (and report.html) with its plots into `out_dir`.

    Args:
        report: the build's report, typed or as report.json holds it.
        out_dir: the folder to write into.
        html: also write report.html.

    Returns:
        The files written: the plots, then report.md (and report.html).
    """
    report = BuildReport.coerce(report)
    plt = _pyplot()
    if plt is None:
        plots: dict[str, str] = {}
        notes = [PLOTS_MISSING]
    else:
        plots, notes = write_plots(report, out_dir, plt)
    doc = build_document(report, plots, notes)
    written = [out_dir / name for name in plots]
    (out_dir / REPORT_MD).write_text(doc.markdown(), encoding="utf-8")
    written.append(out_dir / REPORT_MD)
    if html:
        (out_dir / REPORT_HTML).write_text(doc.html(), encoding="utf-8")
        written.append(out_dir / REPORT_HTML)
    return written
