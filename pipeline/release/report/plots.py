"""PNG plots of a build report: latency, size vs AUROC, confusion matrices, reliability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.release.report.schema import BuildReport
from pipeline.release.report.subgroups import SUBGROUPS_PNG, forest_plot

LATENCY_PNG = "latency.png"
SIZE_AUROC_PNG = "size_auroc.png"
CONFUSION_PNG = "confusion.png"
RELIABILITY_PNG = "reliability.png"


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version: stable bytes


def write_plots(report: BuildReport, out_dir: Path, plt: Any) -> tuple[dict[str, str], list[str]]:
    """PNG plots of a build report with pyplot `plt`; returns {file: title} and notes on
    what was skipped."""
    plots: dict[str, str] = {}
    notes: list[str] = []
    if _latency(report, out_dir / LATENCY_PNG, plt):
        plots[LATENCY_PNG] = "latency p50/p90/p99 per variant"
    else:
        notes.append("latency plot skipped: the bench did not run (--no-bench) or failed")
    if _size_auroc(report, out_dir / SIZE_AUROC_PNG, plt):
        plots[SIZE_AUROC_PNG] = "size vs AUROC per variant"
    if _confusion(report, out_dir / CONFUSION_PNG, plt):
        plots[CONFUSION_PNG] = "confusion matrices (test split)"
    if _reliability(report, out_dir / RELIABILITY_PNG, plt):
        plots[RELIABILITY_PNG] = "reliability diagram (calibration, test split)"
    if forest_plot(report, out_dir / SUBGROUPS_PNG, plt):
        plots[SUBGROUPS_PNG] = "per subgroup: variant - float32 with paired 95% intervals"
    return plots, notes


def _latency(report: BuildReport, path: Path, plt: Any) -> bool:
    bench = {v: b for v, b in report.bench.items() if b.ok}
    if not bench:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    keys = [k for k in ("p50", "p90", "p99") if all(k in b.latency_ms for b in bench.values())]
    width = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        ax.bar(
            [j + i * width for j in range(len(bench))],
            [b.latency_ms[key] for b in bench.values()],
            width,
            label=key,
        )
    ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(bench))], list(bench))
    ax.set_ylabel("latency per invoke (ms)")
    ax.set_title("latency percentiles per variant")
    ax.legend()
    _save(fig, path)
    plt.close(fig)
    return True


def _size_auroc(report: BuildReport, path: Path, plt: Any) -> bool:
    points = []
    for variant, artifact in report.artifacts.items():
        m = report.metrics.get(variant)
        auroc = None if m is None else m.auroc
        if artifact.bytes and auroc is not None:
            points.append((variant, artifact.bytes / 1024, auroc))
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, kb, auroc in points:
        ax.scatter([kb], [auroc], s=40)
        ax.annotate(name, (kb, auroc), textcoords="offset points", xytext=(5, 5))
    ax.margins(x=0.25, y=0.2)
    ax.set_xlabel("file size (KB)")
    ax.set_ylabel("test AUROC")
    ax.set_title("size vs AUROC")
    _save(fig, path)
    plt.close(fig)
    return True


def _confusion(report: BuildReport, path: Path, plt: Any) -> bool:
    matrices = {v: m for v, m in report.metrics.items() if m.confusion_matrix}
    if not matrices:
        return False
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.2 * len(matrices), 3.2), squeeze=False)
    for ax, (variant, m) in zip(axes[0], matrices.items(), strict=True):
        cm = m.confusion_matrix
        names = m.class_names or [str(i) for i in range(len(cm))]
        ax.imshow(cm, cmap="Blues")
        for i, row in enumerate(cm):
            for j, count in enumerate(row):
                ax.text(j, i, str(count), ha="center", va="center")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(variant)
    _save(fig, path)
    plt.close(fig)
    return True


def _reliability(report: BuildReport, path: Path, plt: Any) -> bool:
    curves = {v: m.calibration for v, m in report.metrics.items() if m.calibration}
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    for variant, cal in curves.items():
        r = cal.reliability
        ax.plot(
            r.mean_predicted,
            r.observed,
            marker="o",
            label=f"{variant} (ECE {cal.ece:.3f})",
        )
    first = next(iter(curves.values()))
    ax.set_xlabel(f"mean predicted ({first.basis})")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"reliability ({first.bins} bins, test split)")
    ax.legend(fontsize="small")
    _save(fig, path)
    plt.close(fig)
    return True
