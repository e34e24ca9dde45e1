"""The int8 stage: representative dataset, conversion, proof, and accuracy-aware remedies.

Plain full-integer PTQ is tried first. When it is not within the validation budgets
against the pruned float model (`--val-max-int8-auroc-drop` and, at the operating point, the
`ValidationBudget` of sensitivity, specificity and Brier score; by `--decide`: by default the
upper confidence bounds of the paired losses, `pipeline.evaluate.decision`), the stage
diagnoses why (output saturation and ties, per-layer quantization error) and tries remedies
in order, shipping the first within budget: logits out (the final sigmoid/softmax moves to
the host), other calibration sizes, int16 activations (16x8). When none is, a remedy
replaces plain only when it is better than plain beyond the noise (`PairedJudge.better`);
else plain ships with a warning (`--decide point`: the best validation AUROC ships, the
rule before bounds). The test split is only used for the final numbers, elsewhere.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import Activations, QuantizeConfig, QuantizedIO
from pipeline.config.budget import RATES
from pipeline.errors import QuantizationError
from pipeline.evaluate.decision import Decision, DecisionRule, PairedJudge
from pipeline.evaluate.operating_point import RateBudget
from pipeline.models import OutputKind
from pipeline.quantize.result import Candidate, QuantizationResult, TriedRecipe

if TYPE_CHECKING:
    import keras

    from converters.inspection import ModelInfo
    from pipeline.data.splits import Splits


def calibration_indices(y: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Deterministic label-stratified choice of `samples` indices (all if fewer).

    Each class gets a share proportional to its frequency (largest remainders), so a rare
    class is represented in the activation ranges as it is in the data.
    """
    if samples >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts / counts.sum() * samples
    take = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - take), kind="stable")[: samples - take.sum()]:
        take[i] += 1
    chosen = [
        rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def postprocess_kind(postprocess: str, kind: OutputKind) -> OutputKind:
    """How to read outputs into probabilities after the host applies `postprocess`."""
    return OutputKind.LOGITS if postprocess in ("sigmoid", "softmax") else kind


def _convert(
    model: keras.Model, splits: Splits, config: QuantizeConfig, cand: Candidate, seed: int
) -> tuple[bytes, str, np.ndarray]:
    from converters import tflite

    idx = calibration_indices(splits.calibration_labels, cand.calibration_samples, seed)
    calibration = splits.calibration_inputs()[idx]
    io = config.io
    try:
        if cand.logits:
            with tflite.logits_view(model) as (view, removed):
                data = tflite.to_int8(
                    view,
                    calibration,
                    io=io,
                    activations=cand.activations,
                    sparse=config.sparse_encoding,
                )
        else:
            removed = "none"
            data = tflite.to_int8(
                model,
                calibration,
                io=io,
                activations=cand.activations,
                sparse=config.sparse_encoding,
            )
    except Exception as exc:  # noqa: BLE001 - the converter raises a variety of types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantizationError(
            f"Full-integer {cand.activations} conversion failed: {first}. An op of the model "
            "has no integer TFLite kernel; replace that layer or build with --io float32."
        ) from None
    return data, removed, idx


def _val_metrics(
    data: bytes, splits: Splits, kind: OutputKind, threshold: float, groups: Any = None
) -> tuple[dict[str, Any], np.ndarray]:
    from pipeline.device.client import run_model
    from pipeline.evaluate.metrics import evaluate, probabilities

    with tempfile.TemporaryDirectory(prefix="bedside-q-") as tmp:
        path = Path(tmp, "candidate.tflite")
        path.write_bytes(data)
        outputs = run_model(path, splits.model_inputs("val")).outputs
    probs = probabilities(outputs, kind)
    values = evaluate(
        probs, splits.y_val, positive_class=splits.positive_class, decision_threshold=threshold
    ).values
    if probs.shape[1] == 2:
        p = probs[:, splits.positive_class]
        values["brier"] = float(np.mean((p - (splits.y_val == splits.positive_class)) ** 2))
        if groups is not None:  # the worst judged --subgroup (GroupBudget)
            values.update(groups.worst_group(p))
    return values, probs


def diagnose_output(raw: np.ndarray, dtype: str) -> dict[str, float]:
    """Saturation and ties of an integer output: why AUROC can fall after int8."""
    info = np.iinfo(np.dtype(dtype)) if dtype in ("int8", "uint8", "int16") else None
    flat = np.asarray(raw).reshape(len(raw), -1)[:, -1]
    _, counts = np.unique(flat, return_counts=True)
    doc = {
        "largest_tie_fraction": float(counts.max() / len(flat)) if len(flat) else 0.0,
        "distinct_levels": int(len(counts)),
    }
    if info is not None:
        doc["saturated_fraction"] = float(np.mean((raw == info.min) | (raw == info.max)))
    return doc


def layer_errors(
    model: keras.Model, calibration: np.ndarray, limit: int = 5
) -> list[dict[str, Any]] | str:
    """The layers with the largest quantization error (RMSE / scale), from TFLite's
    QuantizationDebugger; a string saying why when it cannot run."""
    import csv
    import io

    import tensorflow as tf

    from converters import tflite

    try:
        with tempfile.TemporaryDirectory(prefix="bedside-debug-") as tmp:
            converter = tflite.make_converter(model, tmp)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = tflite.representative_dataset(calibration)
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=tflite.representative_dataset(calibration[:32])
            )
            debugger.run()
            dump = io.StringIO()
            debugger.layer_statistics_dump(dump)
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not fail the build
        return f"QuantizationDebugger unavailable: {type(exc).__name__}: {exc}"[:300]
    rows: list[dict[str, Any]] = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row.get("scale") or "nan")
        mse = float(row.get("mean_squared_error") or "nan")
        layer = row.get("tensor_name", "").replace("NumericVerify/", "").split(";")[0]
        rows.append(
            {
                "layer": layer,
                "op": row.get("op_name"),
                "rmse_over_scale": float(np.sqrt(mse) / scale) if scale > 0 else None,
                "max_abs_error": float(row.get("max_abs_error") or "nan"),
            }
        )
    rows.sort(key=lambda r: -(r["rmse_over_scale"] or 0.0))
    return rows[:limit]


def _ladder(config: QuantizeConfig, kind: OutputKind) -> list[Candidate]:
    n = config.calibration_samples
    plain = Candidate("plain", calibration_samples=n, activations=config.activations)
    if not config.remedy:
        return [plain]
    logits = kind in (OutputKind.SIGMOID, OutputKind.SOFTMAX)
    ladder = [plain]
    if logits:
        ladder.append(replace(plain, name="logits", logits=True))
    for other in sorted({max(n // 4, 16), n * 4} - {n}):
        ladder.append(
            replace(
                plain, name=f"logits+calibration_{other}", logits=logits, calibration_samples=other
            )
        )
    # 16x8 kernels run on the reference path, not XNNPACK: a MobileNetV2-0.35 went from
    # 0.30 ms to 11.7 ms. Only on request, so a remedy never trades speed silently.
    int8, uint8 = Activations.INT8.value, QuantizedIO.UINT8.value
    if config.remedy_int16 and config.activations == int8 and config.io != uint8:
        ladder.append(
            replace(
                plain,
                name="logits+int16_activations" if logits else "int16_activations",
                logits=logits,
                activations="int16",
            )
        )
    return ladder


def quantize(
    model: keras.Model,
    splits: Splits,
    config: QuantizeConfig,
    kind: OutputKind,
    reference_val_auroc: float | None,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
    rates: RateBudget | None = None,
    rule: DecisionRule | None = None,
) -> QuantizationResult:
    """Full-integer PTQ calibrated on the train split, proven from the file, with remedies.

    Args:
        model: the pruned (and fine-tuned) Keras model.
        splits: data; calibration from train, remedy decisions on val.
        config: quantization settings.
        kind: what the model's output holds.
        reference_val_auroc: the pruned float model's validation AUROC, the budget's base.
        seed: for the calibration sample.
        progress: reports which recipe is being tried.
        rates: the validation sensitivity and specificity budget at the operating point
            (its reference: the pruned float model's); None judges AUROC alone.
        rule: `--decide` and `--decision-confidence` (None: their defaults).

    Raises:
        QuantizationError: the converter cannot quantize an op, or the produced file still
            holds a float tensor.
    """
    from converters.inspection import inspect_tflite, require_full_integer

    paired = _paired(model, splits, config, kind, reference_val_auroc, rates, rule)
    tried: list[TriedRecipe] = []
    runs: list[tuple[Candidate, bytes, np.ndarray, ModelInfo, Decision | None]] = []
    diagnosis: dict[str, Any] | None = None
    for cand in _ladder(config, kind):
        progress(f"quantize int8 ({cand.name})")
        data, removed, idx = _convert(model, splits, config, cand, seed)
        info = inspect_tflite(data)
        require_full_integer(info, "model_int8.tflite", float_edges=config.io == "float32")
        eval_kind = postprocess_kind(removed, kind)
        groups = rates.groups if rates else None
        val, probs = _val_metrics(
            data, splits, eval_kind, rates.threshold if rates else 0.5, groups
        )
        decision = paired.judge(probs) if paired else None
        entry = _judge(cand, removed, len(idx), val, reference_val_auroc, config, rates, len(data))
        if decision is not None:
            entry = replace(
                entry,
                meets_budget=decision.within_budget,
                val_loss_bound=decision.to_json()["val_loss_bound"],
            )
        tried.append(entry)
        runs.append((cand, data, idx, info, decision))
        if entry.meets_budget:
            break
        if diagnosis is None:
            diagnosis = _diagnose(model, splits, data, info, idx)
    pick, tried = choose_recipe(tried, [r[4] for r in runs], paired)
    cand, data, idx, info, _ = runs[pick]
    entry = tried[pick]
    decisions = [r[4] for r in runs if r[4] is not None]
    return QuantizationResult(
        tflite=data,
        postprocess=entry.postprocess,
        output_kind=postprocess_kind(entry.postprocess, kind),
        recipe=cand,
        inspection=info,
        config=config,
        calibration_samples=int(len(idx)),
        calibration_label_counts=splits.calibration_label_counts(idx),
        reference_val_auroc=reference_val_auroc,
        rates=rates,
        tried=tuple(tried),
        diagnosis=diagnosis,
        rule=paired.rule if paired else None,
        min_detectable=paired.min_detectable(decisions) if paired else None,
    )


def _paired(
    model: keras.Model,
    splits: Splits,
    config: QuantizeConfig,
    kind: OutputKind,
    reference_val_auroc: float | None,
    rates: RateBudget | None,
    rule: DecisionRule | None,
) -> PairedJudge | None:
    """The paired judge of the recipes against the pruned float model (None: AUROC
    undefined on validation, nothing to judge)."""
    from pipeline.evaluate.metrics import probabilities

    if reference_val_auroc is None:
        return None
    outputs = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
    return PairedJudge.of_reference(
        probabilities(outputs, kind),
        splits.y_val,
        splits.positive_class,
        rates.threshold if rates else None,
        config.max_auroc_drop,
        rates.budget if rates else None,
        rule or DecisionRule(),
        groups=rates.groups if rates else None,
    )


def choose_recipe(
    tried: list[TriedRecipe], decisions: list[Decision | None], paired: PairedJudge | None
) -> tuple[int, list[TriedRecipe]]:
    """Which tried recipe ships, and `tried` with why each was kept or passed over.

    The one within budget ships (the ladder stops there). When none is: with `paired`,
    the first remedy better than plain beyond the noise on a budget plain missed, else
    plain; without (`--decide point`, or AUROC undefined) the best validation AUROC, the
    rule before bounds.
    """
    within = [i for i, t in enumerate(tried) if t.meets_budget]
    plain, better = decisions[0], []
    if within:
        pick, why = within[0], ""
    elif paired is None or plain is None or paired.rule.decide.value == "point":
        pick = max(range(len(tried)), key=lambda i: (tried[i].val_auroc or 0, -i))
        why = "none within budget: the best validation AUROC ships (--decide point)"
    else:
        better = [
            i
            for i, d in enumerate(decisions[1:], 1)
            if d is not None and paired.better(d, plain, list(plain.missed))
        ]
        pick = better[0] if better else 0
        why = (
            "none within budget: better than plain beyond the noise"
            if better
            else "none within budget and no remedy better than plain beyond the noise"
        )
    out = []
    for i, (t, d) in enumerate(zip(tried, decisions, strict=True)):
        missed = "; ".join(d.missed.values()) if d is not None else ""
        missed = missed or "missed a validation budget (AUROC or rates)"
        if i == pick:
            reason = "within every validation budget" if t.meets_budget else f"{missed} -- {why}"
            out.append(replace(t, decision="shipped", reason=reason))
        else:
            out.append(replace(t, decision="passed over", reason=missed + _passed(i, why, better)))
    return pick, out


def _passed(i: int, why: str, better: list[int]) -> str:
    """Why a remedy out of budget was passed over when no recipe was within budget and the
    noise decided (`why` names it)."""
    if i == 0 or "noise" not in why:
        return ""
    return (
        " -- not better than plain beyond the noise"
        if i not in better
        else (" -- an earlier remedy was better than plain beyond the noise too")
    )


def _judge(
    cand: Candidate,
    postprocess: str,
    samples: int,
    val: dict[str, Any],
    reference_val_auroc: float | None,
    config: QuantizeConfig,
    rates: RateBudget | None,
    size: int,
) -> TriedRecipe:
    """A recipe's validation numbers against the budget."""
    auroc = val["auroc"]
    drop = None if auroc is None or reference_val_auroc is None else reference_val_auroc - auroc
    meets = drop is None or drop <= config.max_auroc_drop
    val_rates = drops = None
    if rates is not None and val.get("sensitivity") is not None:
        meets = meets and rates.meets(val)
        val_rates = {name: val.get(name) for name in RATES}
        drops = rates.drops(val)
    return TriedRecipe(
        name=cand.name,
        postprocess=postprocess,
        calibration_samples=samples,
        activations=cand.activations,
        val_auroc=auroc,
        val_auroc_drop=drop,
        val_rates=val_rates,
        val_rate_drops=drops,
        meets_budget=meets,
        bytes=size,
        val_groups={k: v for k, v in val.items() if "group" in k} or None,
    )


def _diagnose(
    model: keras.Model, splits: Splits, data: bytes, info: Any, idx: np.ndarray
) -> dict[str, Any]:
    from pipeline.device.client import run_model

    with tempfile.TemporaryDirectory(prefix="bedside-q-") as tmp:
        path = Path(tmp, "plain.tflite")
        path.write_bytes(data)
        raw = run_model(path, splits.model_inputs("val")).raw_outputs
    out_dtype = info.tensors[info.outputs[0]].dtype.lower()
    return {
        "output": diagnose_output(raw, out_dtype),
        "worst_layers": layer_errors(model, splits.calibration_inputs()[idx]),
    }
