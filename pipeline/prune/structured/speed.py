"""`--structured-sparsity auto --speedup-target X`: the cut that loses least while meeting X.

A latency model of the target (`pipeline.prune.structured.latency`) predicts every
candidate's int8 time without training it: the configured residual branches dropped
(those adding least per measured ms), then each channel fraction R of the auto grid at
each channel multiple of `MULTIPLES`, channels ranked by importance per measured ms saved.
The predicted speedup is the unpruned int8 file's measured time over the candidate's
predicted time. Of the candidates meeting X, the one losing least importance (the sum of
the removed channels' scores, a share of all) is built, fine-tuned once with the full
recipe and judged on validation like every auto point. In budget: it ships, with its
predicted and measured int8 latency. Otherwise (or when no candidate meets X) the model
goes on unchanged with a warning saying which of the two could not be met.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import StructuredConfig
from pipeline.models.flatten import flatten
from pipeline.prune.auto import (
    AutoSearch,
    RateJudge,
    by_bounds,
    decision_json,
    judge_fields,
    rates_text,
    within_budget,
)
from pipeline.prune.structured.branches import drop_weakest_branches, residual_branches
from pipeline.prune.structured.graph import analyse
from pipeline.prune.structured.latency import (
    APPROXIMATION,
    LatencyModel,
    LayerTimes,
    Profiler,
)
from pipeline.prune.structured.outcome import StructuredOutcome
from pipeline.prune.structured.planning import ChannelPlan, select_channels
from pipeline.prune.structured.scoring import channel_scores
from pipeline.prune.structured.step import Score, prune_structured

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.evaluate.decision import ModelJudge
    from pipeline.models import OutputKind

MULTIPLES = (1, 8, 16)  # channel multiples each R is tried at (besides the configured one)
# without --drop-blocks: the shares of the removable residual branches each cut may drop
BRANCH_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Candidate:
    """One cut as the latency model predicts it (nothing trained)."""

    sparsity: float
    channel_multiple: int
    drop_blocks: int  # residual branches removed whole (those adding least per measured ms)
    predicted_ms: float
    predicted_speedup: float
    importance_lost: float  # removed channels' share of all channel scores

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _lost(plan: ChannelPlan) -> float:
    total = sum(float(s.sum()) for s in plan.scores.values()) or 1.0
    kept = sum(float(plan.scores[g][k].sum()) for g, k in plan.kept.items())
    return (total - kept) / total


def block_counts(model: keras.Model, config: StructuredConfig) -> tuple[int, ...]:
    """How many residual branches the cuts may drop: `--drop-blocks` when given, else the
    `BRANCH_SHARES` of the model's removable branches (0 when it has none)."""
    if config.drop_blocks:
        return (config.drop_blocks,)
    n = len(residual_branches(model))
    return tuple(sorted({int(round(n * share)) for share in BRANCH_SHARES}))


def candidates(
    flat: keras.Model, config: StructuredConfig, x: np.ndarray, latency: LatencyModel
) -> list[Candidate]:
    """Every (branches dropped, R, channel multiple) of the grid, predicted on `flat`."""
    out = []
    multiples = sorted({config.channel_multiple, *MULTIPLES})
    for blocks in block_counts(flat, config):
        source = flat
        if blocks:
            source = drop_weakest_branches(flat, x, blocks, latency.branch_ms)[0]
        scores = channel_scores(source, analyse(source), config.criterion, x)  # once per D
        for sparsity in sorted(config.auto_grid):
            for multiple in multiples:
                point = dataclasses.replace(
                    config, sparsity=sparsity, channel_multiple=multiple, drop_blocks=blocks
                )
                plan = select_channels(source, point, x, latency.channel_costs, scores)
                ms = latency.predict_plan(source, plan)
                speedup = latency.unpruned_ms / ms
                out.append(Candidate(sparsity, multiple, blocks, ms, speedup, _lost(plan)))
    return out


def shortlist(points: list[Candidate], target: float, size: int) -> list[Candidate]:
    """The cuts worth fine-tuning: of those predicted to meet `target`, per number of
    dropped branches (fewest first) the one losing least channel importance, `size` in all.
    Channel importance is comparable only at the same branches dropped, so the branches are
    weighed by fine-tuning, not by a score."""
    best: dict[int, Candidate] = {}
    for p in sorted(points, key=lambda p: p.importance_lost):
        if p.predicted_speedup >= target:
            best.setdefault(p.drop_blocks, p)
    return [best[d] for d in sorted(best)][:size]


def latency_json(
    latency: LatencyModel,
    model: keras.Model,
    target: float,
    points: list[Candidate],
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The report's `pruning.structured.latency` section: predicted next to measured."""
    predicted = latency.predict_model(model)
    started = time.perf_counter()
    measured = float(latency.times.profiler.model_ms(model))
    seconds["measure_s"] = time.perf_counter() - started
    return {
        "runtime": latency.runtime,
        "unpruned_ms": latency.unpruned_ms,
        "predicted_ms": predicted,
        "measured_ms": measured,
        "predicted_over_measured": predicted / measured if measured > 0 else None,
        "predicted_speedup": latency.unpruned_ms / predicted if predicted > 0 else None,
        "measured_speedup": latency.unpruned_ms / measured if measured > 0 else None,
        "speedup_target": target,
        "approximation": APPROXIMATION,
        "cache": str(latency.times.path),
        "layers_measured": latency.times.measured,
        "candidates": [p.to_json() for p in points],
        "seconds": seconds,
    }


def _reason_no_speed(target: float, points: list[Candidate]) -> str:
    best = max(points, key=lambda p: p.predicted_speedup, default=None)
    top = (
        f"{best.predicted_speedup:.2f}x at R {best.sparsity:g} with {best.drop_blocks} "
        "residual branches dropped"
        if best
        else "none"
    )
    return (
        f"no cut of the grid is predicted to reach --speedup-target {target:g} on this "
        f"target (best {top}); the model goes on without structured pruning. Lower "
        "--speedup-target, widen the grid, or move the input front to the host "
        "(--host-preprocessing), whose time no cut removes."
    )


def search_for_speed(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: StructuredConfig,
    max_prune_drop: float,
    *,
    score: Score,
    profiler: Profiler,
    seed: int = 0,
    rates: RateJudge | None = None,
    paired: ModelJudge | None = None,
) -> StructuredOutcome:
    """The speed-target search (see the module docstring); `model` is not changed; the
    chosen cut is judged by `paired` (`--decide`) when given, else on point estimates."""
    target = float(config.speedup_target or 0.0)
    config = dataclasses.replace(config, speedup_target=None)  # points are fixed R, not auto
    started = time.perf_counter()
    flat = flatten(model).model
    latency = LatencyModel(flat, LayerTimes(profiler))
    seconds = {"latency_model_s": time.perf_counter() - started}
    x_train = splits.model_inputs("train")[:256]
    points = candidates(flat, config, x_train, latency)
    seconds["candidates_s"] = time.perf_counter() - started - seconds["latency_model_s"]
    baseline = score(model)
    meeting = shortlist(points, target, 1)

    def search(chosen: float | None, reason: str, curve: tuple[dict[str, Any], ...]) -> AutoSearch:
        return AutoSearch(
            config.auto_grid, max_prune_drop, baseline, curve, chosen, reason,
            **judge_fields(rates, paired),
        )  # fmt: skip

    if baseline is None or not meeting:
        reason = _reason_no_speed(target, points) if baseline is not None else (
            "validation AUROC of the original model is undefined, so the speed-target "
            "search cannot judge a cut; the model goes on without structured pruning."
        )  # fmt: skip
        auto = search(None, reason, ())
        return _unchanged(model, config, auto, latency, target, points, seconds)
    best = meeting[0]
    point = dataclasses.replace(
        config,
        sparsity=best.sparsity,
        channel_multiple=best.channel_multiple,
        drop_blocks=best.drop_blocks,
    )
    tuned = time.perf_counter()
    outcome = prune_structured(model, splits, kind, point, score=score, seed=seed, latency=latency)
    seconds["finetune_s"] = time.perf_counter() - tuned
    auroc = outcome.val_auroc["finetuned" if outcome.finetune else "pruned"]
    val_rates, ok, decision = within_budget(
        outcome.model, auroc, baseline, max_prune_drop, rates, paired
    )
    point_json = {**best.to_json(), "val_auroc": auroc, **val_rates, "within_budget": ok}
    curve = ({**point_json, **decision_json(decision)},)
    if not ok:
        reason = (
            f"the cut predicted to reach --speedup-target {target:g} with least loss (R "
            f"{best.sparsity:g}, channel multiple {best.channel_multiple}, "
            f"{best.drop_blocks} residual branches dropped, predicted "
            f"{best.predicted_speedup:.2f}x) loses validation AUROC beyond --max-prune-drop "
            f"{max_prune_drop:g} of {baseline:.4f}{rates_text(rates, paired)}"
            f"{by_bounds(paired)}: no point meets both; "
            "the model goes on without structured pruning. Lower --speedup-target, raise "
            "--max-prune-drop, or fine-tune longer (--structured-finetune-epochs)."
        )
        auto = search(None, reason, curve)
        return _unchanged(model, config, auto, latency, target, points, seconds)
    reason = (
        f"of the cuts predicted to reach --speedup-target {target:g}, the one losing least "
        f"channel importance ({best.importance_lost:.3f}), in the validation budget"
    )
    section = latency_json(latency, outcome.model, target, points, seconds)
    section["seconds"]["total_s"] = time.perf_counter() - started
    return dataclasses.replace(outcome, auto=search(best.sparsity, reason, curve), latency=section)


def _unchanged(
    model: keras.Model,
    config: StructuredConfig,
    auto: AutoSearch,
    latency: LatencyModel,
    target: float,
    points: list[Candidate],
    seconds: dict[str, float],
) -> StructuredOutcome:
    started = time.perf_counter()
    section = {
        "runtime": latency.runtime,
        "unpruned_ms": latency.unpruned_ms,
        "speedup_target": target,
        "warning": auto.reason,
        "approximation": APPROXIMATION,
        "cache": str(latency.times.path),
        "layers_measured": latency.times.measured,
        "candidates": [p.to_json() for p in points],
        "seconds": {**seconds, "total_s": sum(seconds.values()) + time.perf_counter() - started},
    }
    return dataclasses.replace(StructuredOutcome.unchanged(model, config, auto), latency=section)
