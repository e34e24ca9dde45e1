"""What a person reads of the subgroups: the table per variant, the missed positives by
group, the worst judged group, and the forest plot `subgroups.png`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from pipeline.release.report.schema import BuildReport, SubgroupMetrics

SUBGROUPS_PNG = "subgroups.png"
HEADER = ("group", "n", "pos/neg", "judged", "AUROC", "sensitivity", "specificity",
          "vs float32 (AUROC)", "vs float32 (sensitivity)", "missed")  # fmt: skip


class Worst(NamedTuple):
    """The judged test group with the highest upper 95% bound of float32 - variant."""

    group: str  # "site=B"
    upper: float
    low: float  # the interval of float32 - variant is [low, upper]


def _groups(report: BuildReport, variant: str) -> list[tuple[str, str, SubgroupMetrics]]:
    m = report.metrics.get(variant)
    if m is None or not m.subgroups:
        return []
    return [(n, v, doc) for n, by in m.subgroups.items() for v, doc in by.items()]


def _judged(report: BuildReport, name: str, value: str) -> bool:
    info = (report.subgroups or {}).get(name, {}).get(value)
    return bool(info and info.judged)


def worst_group(report: BuildReport, variant: str, metric: str) -> Worst | None:
    """The judged test group where `variant` is furthest from float32 on `metric` (by the
    upper bound of the paired interval of float32 - variant); None without one."""
    worst = None
    for name, value, doc in _groups(report, variant):
        paired = (doc.vs_float32 or {}).get(metric)
        if not _judged(report, name, value) or paired is None or paired.ci95 is None:
            continue
        low, upper = -paired.ci95[1], -paired.ci95[0]
        if worst is None or upper > worst.upper:
            worst = Worst(f"{name}={value}", upper, low)
    return worst


def worst_group_line(report: BuildReport, variant: str = "int8") -> str | None:
    """The console's line naming the worst judged group of `variant`."""
    worst = worst_group(report, variant, "auroc") or worst_group(report, variant, "accuracy")
    if worst is None:
        if report.subgroups is None:
            return None
        return f"subgroups: no judged group for {variant} (see report.md)"
    metric = "AUROC" if worst_group(report, variant, "auroc") else "accuracy"
    return (
        f"subgroups: worst judged group for {variant} is {worst.group}: float32 - {variant} "
        f"{metric} 95% interval [{worst.low:+.4f}, {worst.upper:+.4f}] (paired bootstrap)"
    )


def _fmt(value: float | None, interval: Any = None) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    return text if interval is None else f"{text} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _diff(doc: SubgroupMetrics, metric: str) -> str:
    paired = (doc.vs_float32 or {}).get(metric)
    if paired is None or paired.diff is None:
        return "-"
    ci = "" if paired.ci95 is None else f" [{paired.ci95[0]:+.3f}, {paired.ci95[1]:+.3f}]"
    return f"{paired.diff:+.3f}{ci}"


def subgroup_rows(report: BuildReport, variant: str) -> list[list[str]]:
    """One row per group of `variant`'s subgroup table."""
    rows = []
    for name, value, doc in _groups(report, variant):
        info = (report.subgroups or {}).get(name, {}).get(value)
        ci = doc.ci95 or {}
        pos_neg = "-" if info is None or info.positives is None else (
            f"{info.positives}/{info.negatives}")  # fmt: skip
        judged = "yes" if info and info.judged else f"no: {info.reason if info else '?'}"
        first = doc.auroc if doc.auroc is not None else doc.accuracy
        rows.append([
            f"{name}={value}", str(doc.n), pos_neg, judged,
            _fmt(first, ci.get("auroc", ci.get("accuracy"))),
            _fmt(doc.sensitivity, ci.get("sensitivity")),
            _fmt(doc.specificity, ci.get("specificity")),
            _diff(doc, "auroc" if doc.auroc is not None else "accuracy"),
            _diff(doc, "sensitivity"),
            "-" if doc.flips is None else str(doc.flips.positive_missed),
        ])  # fmt: skip
    return rows


def add_section(doc: Any, report: BuildReport) -> None:
    """report.md's Subgroups section: a table per variant (`doc` is a Document)."""
    if report.subgroups is None:
        return
    doc.heading("Subgroups")
    doc.text(
        "Test split, per --subgroup value, at the operating point. [ ]: 95% intervals of "
        "the whole split's stratified bootstrap, each replicate restricted to the group's "
        "cases; 'vs float32' is the paired difference (variant - float32) on the same "
        "resampled cases; 'missed': positives "
        "float32 flags and the variant does not. Groups with fewer than "
        "--min-subgroup-cases positives or negatives are shown but not judged."
    )
    for variant in report.metrics:
        rows = subgroup_rows(report, variant)
        if rows:
            doc.text(f"**{variant}**")
            doc.table(HEADER, rows)


def forest_plot(report: BuildReport, path: Path, plt: Any) -> bool:
    """`subgroups.png`: per group and variant, variant - float32 (AUROC, else accuracy)
    with its paired 95% interval; False when there is nothing to draw."""
    points = []
    for variant in list(report.metrics)[1:]:
        for name, value, doc in _groups(report, variant):
            metric = "auroc" if doc.auroc is not None else "accuracy"
            paired = (doc.vs_float32 or {}).get(metric)
            if paired is not None and paired.diff is not None and paired.ci95 is not None:
                points.append((f"{variant}  {name}={value}", paired.diff, paired.ci95, metric))
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.32 * len(points)))
    for i, (_, diff, (low, high), _) in enumerate(points):
        ax.errorbar(diff, i, xerr=[[diff - low], [high - diff]], fmt="o", color="C0", capsize=3)
    ax.axvline(0.0, color="gray", linewidth=1)
    ax.set_yticks(range(len(points)), [p[0] for p in points])
    ax.invert_yaxis()
    ax.set_xlabel(f"variant - float32 {points[0][3].upper()} (paired 95% interval)")
    ax.set_title("per subgroup: what compression changes (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return True
