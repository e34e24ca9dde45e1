"""The report's warnings: what a user must know before shipping the int8 model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.config import PruneConfig, Variant
from pipeline.evaluate.decision import detectable_warnings

if TYPE_CHECKING:
    from pipeline.prune.flatten import Flattened
    from pipeline.prune.outcome import PruningOutcome
    from pipeline.prune.structured import StructuredOutcome
    from pipeline.quantize.result import QuantizationResult


def flatten_warnings(flatten: Flattened | None) -> list[str]:
    """A warning for every nested model left whole by the flattening before pruning."""
    return [
        f"nested model '{s['layer']}' not flattened for pruning: {s['reason']}"
        for s in (flatten.skipped if flatten else ())
    ]


def structured_warnings(s: StructuredOutcome | None, prune: PruneConfig) -> list[str]:
    """A warning when structured pruning lost more validation AUROC than pruning may, or
    when `--structured-sparsity auto` chose no channel fraction (its reason)."""
    if not s:
        return []
    if s.auto and s.auto.chosen_sparsity is None:
        return [f"--structured-sparsity auto: {s.auto.reason}"]
    auroc = s.val_auroc
    after = auroc["finetuned"] if auroc["finetuned"] is not None else auroc["pruned"]
    if auroc["original"] is None or after is None:
        return []
    drop = auroc["original"] - after
    if drop <= prune.max_prune_drop:
        return []
    return [
        f"structured pruning lost {drop:.4f} validation AUROC ({auroc['original']:.4f} -> "
        f"{after:.4f}), more than --max-prune-drop {prune.max_prune_drop}. Remove fewer "
        "channels or branches, fine-tune longer (--structured-finetune-epochs), or try the "
        "other --structured-criterion; gate the release with --gate max_auroc_drop=X."
    ]


def quantization_warnings(q: QuantizationResult) -> list[str]:
    """A warning when no int8 recipe met the validation budgets: what shipped instead."""
    if q.budget_met:
        return []
    best, rates = q.chosen, q.rates
    sens = best_sens = ""
    sensitivity, specificity = best.rate("sensitivity"), best.rate("specificity")
    reference = rates.reference if rates else {}
    if rates and reference.get("sensitivity") is not None and sensitivity is not None:
        sens = (
            f" and validation sensitivity/specificity within "
            f"{rates.budget.max_sensitivity_drop}/{rates.budget.max_specificity_drop} of its "
            f"{reference['sensitivity']:.3f}/{reference['specificity']:.3f}"
        )
        best_sens = f" (sensitivity {sensitivity:.3f}, specificity {specificity:.3f})"
    if best.decision is not None:
        plain = q.tried[0]
        return [
            f"no int8 recipe was within the validation budgets against the pruned float model "
            f"(plain: {plain.reason}); shipping '{q.recipe.name}' with validation AUROC "
            f"{fmt_auroc(best.val_auroc)}{best_sens}. Consider --remedy-int16, more calibration "
            "data or less pruning."
        ]
    return [
        f"no int8 recipe kept validation AUROC within {q.config.max_auroc_drop} of the pruned "
        f"float model ({q.reference_val_auroc:.4f}){sens}; shipping '{q.recipe.name}' with "
        f"{best.val_auroc:.4f}{best_sens}. Consider --remedy-int16, more calibration data "
        "or less pruning."
    ]


def fmt_auroc(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def detectable_budget_warnings(
    pruning: PruningOutcome,
    structured: StructuredOutcome | None,
    q: QuantizationResult,
    val_cases: int,
) -> list[str]:
    """A warning per validation budget below the smallest loss the split can detect."""
    out = []
    blocks = [
        ("--sparsity auto", pruning.auto),
        ("--structured-sparsity auto", structured.auto if structured else None),
    ]
    for name, auto in blocks:
        if auto is None or auto.paired is None:
            continue
        limits = auto.paired.paired.limits
        out += detectable_warnings(
            name, auto.min_detectable(), limits, val_cases, "--max-prune-drop"
        )
    if q.rule is not None and q.min_detectable is not None:
        limits = {"auroc": q.config.max_auroc_drop}
        if q.rates is not None:
            limits.update(q.rates.budget.rate_limits())
        out += detectable_warnings(
            "int8 remedies", q.min_detectable, limits, val_cases, "--val-max-int8-auroc-drop"
        )
    return out


def bench_warnings(bench: dict[str, Any]) -> list[str]:
    """A plain warning per measured runtime on which int8 is not faster than float32."""
    f32, i8 = bench.get(Variant.FLOAT32.value), bench.get(Variant.INT8.value)
    if not f32 or not i8:
        return []
    out = []
    for a, b in ((f32, i8), (f32.get("runtime_python"), i8.get("runtime_python"))):
        if not a or not b or not a.get("status") == b.get("status") == "ok":
            continue
        f, q = a["latency_ms"]["p50"], b["latency_ms"]["p50"]
        if q >= f:
            out.append(
                f"int8 is not faster than float32 on {b['runtime']} {b.get('runtime_version')}"
                f" ({b['threads']} thread(s)): p50 {q:.3g} ms int8 vs {f:.3g} ms float32. "
                "Ship what is fastest on the device's runtime: measure there."
            )
    for name, entry in (f32.get("devices") or {}).items():
        if entry.get("emulated"):
            out.append(
                f"device '{name}' is emulated: its bench timings measure the emulator and "
                "mean nothing for the real device; only its verification counts."
            )
    return out
