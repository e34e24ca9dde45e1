"""The report's warnings: what a user must know before shipping the int8 model."""

from __future__ import annotations

from typing import Any

from pipeline.config import PruneConfig, Variant


def flatten_warnings(flatten: dict[str, Any] | None) -> list[str]:
    """A warning for every nested model left whole by the flattening before pruning."""
    return [
        f"nested model '{s['layer']}' not flattened for pruning: {s['reason']}"
        for s in (flatten or {}).get("skipped", [])
    ]


def structured_warnings(s: dict[str, Any] | None, prune: PruneConfig) -> list[str]:
    """A warning when structured pruning lost more validation AUROC than pruning may, or
    when `--structured-sparsity auto` chose no channel fraction (its reason)."""
    if not s:
        return []
    auto = s.get("auto")
    if auto and auto["chosen_sparsity"] is None:
        return [f"--structured-sparsity auto: {auto['reason']}"]
    auroc = s["validation_auroc"]
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


def quantization_warnings(q: dict[str, Any]) -> list[str]:
    if q.get("budget_met", True):
        return []
    best = next(t for t in q["tried"] if t["name"] == q["recipe"])
    sens = best_sens = ""
    if q.get("reference_val_sensitivity") is not None and best.get("val_sensitivity") is not None:
        sens = (
            f" and validation sensitivity/specificity within {q['max_sensitivity_drop']}/"
            f"{q['max_specificity_drop']} of its {q['reference_val_sensitivity']:.3f}/"
            f"{q['reference_val_specificity']:.3f}"
        )
        best_sens = (
            f" (sensitivity {best['val_sensitivity']:.3f}, specificity "
            f"{best['val_specificity']:.3f})"
        )
    return [
        f"no int8 recipe kept validation AUROC within {q['max_auroc_drop']} of the pruned "
        f"float model ({q['reference_val_auroc']:.4f}){sens}; shipping '{q['recipe']}' with "
        f"{best['val_auroc']:.4f}{best_sens}. Consider --remedy-int16, more calibration data "
        "or less pruning."
    ]


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
