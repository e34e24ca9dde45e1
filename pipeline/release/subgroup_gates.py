"""`subgroup_noninferiority_auroc` / `_sensitivity`: int8 is non-inferior to float32 in
every judged test subgroup, not only on average."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.config.gates import FLOAT32


def subgroup_noninferiority(
    report: Mapping[str, Any], name: str, metric: str, margin: float
) -> Any:
    """Passes when, in every judged test subgroup, the upper 95% bound of the paired
    float32 - int8 difference of `metric` is <= `margin`; measures the worst group's bound.
    Not measured (fails) without a judged group or without intervals."""
    from pipeline.release.gates import INT8, Check
    from pipeline.release.report.schema import BuildReport
    from pipeline.release.report.subgroups import worst_group

    worst = worst_group(BuildReport.coerce(report), INT8, metric)
    if worst is None:
        return Check(
            name,
            FLOAT32,
            None,
            margin,
            False,
            f"not measured: no judged test subgroup with a paired {metric} interval "
            "(--subgroup not given, groups below --min-subgroup-cases, --bootstrap 0, or a "
            f"multi-class task has no {metric})",
        )
    passed = worst.upper <= margin
    detail = (
        f"worst judged group {worst.group}: 95% interval of float32 - int8 {metric} "
        f"[{worst.low:.4f}, {worst.upper:.4f}] (paired bootstrap within the group); its upper "
        f"bound {worst.upper:.4f} must not exceed the margin {margin:g}"
    )
    return Check(name, FLOAT32, worst.upper, margin, bool(passed), detail)
