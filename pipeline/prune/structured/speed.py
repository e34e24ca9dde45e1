"""`--structured-sparsity auto --speedup-target X`: the cut that loses least while meeting X.

A latency model of the target (`pipeline.prune.structured.latency`) predicts every
candidate's int8 time without training it: the model's enlarging Resizing front at its own
size and, when it has one, at smaller sides down to the input's size
(`pipeline.prune.structured.resize`; `--structured-resize` fixes the side); D residual
branches dropped (those adding least per measured ms; D is `--drop-blocks` when given, else
each of `BRANCH_SHARES` of the removable ones); then each channel fraction R of the auto
grid (and R 0 where the front or the branches already cut) at each channel multiple of
`MULTIPLES`, channels ranked by importance per measured ms saved. The predicted speedup is
the unpruned int8 file's measured time over the candidate's predicted time. Of the
candidates meeting X, `shortlist` takes one per front size, then one per D, each losing
least channel importance (the removed channels' share of all scores; comparable only at
the same size and D), `speedup_candidates` K in all; each is built and given a short fine-tune
(`speedup_rank_epochs`, the recipe otherwise); the best on validation AUROC (ties: less
importance lost) is built again, fine-tuned once with the full recipe and judged on
validation like every auto point. When it misses the budgets, the next-ranked cut gets
the full fine-tune, up to `speedup_finetunes` in all (default 2): the ranking after 3
epochs is a noisy guess of the order after 40, and the int8 ladder too tries its next
rung when one misses. The recipe is the user's where set, else
`SPEED_TARGET_RECIPE` (40 epochs, cosine, distillation 0.5, shift for images): a 2x cut
needs a real fine-tune. In budget: it ships, with its predicted and
measured int8 latency. Otherwise (or when no candidate meets X) the model goes on
unchanged with a warning saying which of the two could not be met.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import StructuredConfig, StructuredRecipe
from pipeline.config.prune import RECIPE_FIELDS
from pipeline.errors import ModelError
from pipeline.models.flatten import flatten
from pipeline.prune.auto import (
    AutoSearch,
    RateJudge,
    auroc_text,
    by_bounds,
    decision_json,
    judge_fields,
    rates_text,
    within_budget,
)
from pipeline.prune.structured.branches import (
    check_count,
    drop_branches,
    residual_branches,
    weakest_first,
)
from pipeline.prune.structured.graph import analyse
from pipeline.prune.structured.latency import (
    APPROXIMATION,
    LatencyModel,
    LayerTimes,
    Profiler,
)
from pipeline.prune.structured.outcome import StructuredOutcome, shipped_auroc
from pipeline.prune.structured.planning import ChannelPlan, select_channels
from pipeline.prune.structured.resize import front, resized
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
    resize: int | None = None  # side of the model's enlarging Resizing front; None: its own

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _lost(plan: ChannelPlan) -> float:
    total = sum(float(s.sum()) for s in plan.scores.values()) or 1.0
    kept = sum(float(plan.scores[g][k].sum()) for g, k in plan.kept.items())
    return (total - kept) / total


def block_counts(model: keras.Model, config: StructuredConfig) -> tuple[int, ...]:
    """How many residual branches the cuts may drop: `--drop-blocks` when given, else the
    `BRANCH_SHARES` of the model's removable branches (0 when it has none)."""
    return _block_counts(len(residual_branches(model)), config)


def _block_counts(removable: int, config: StructuredConfig) -> tuple[int, ...]:
    if config.drop_blocks:
        return (config.drop_blocks,)
    return tuple(sorted({int(round(removable * share)) for share in BRANCH_SHARES}))


@dataclass(frozen=True)
class Grid:
    """The predicted cuts and the latency model of each input-front size they use."""

    points: list[Candidate]
    latencies: dict[int | None, LatencyModel]  # by `Candidate.resize`


def front_models(flat: keras.Model, config: StructuredConfig) -> dict[int | None, keras.Model]:
    """`flat` at each side of its Resizing front the cuts use: None (its own) and, with an
    enlarging front, its `SEARCH_SHARES` down to the input's size; `--structured-resize`
    only. A side the model cannot run at (Flatten into Dense) is skipped unless asked for.

    Raises:
        ModelError: `--structured-resize` names a side the model cannot take.
    """
    if config.resize is not None:
        return {config.resize: resized(flat, config.resize)}
    found = front(flat)
    out: dict[int | None, keras.Model] = {None: flat}
    for side in found.search_sizes() if found else ():
        try:
            out[side] = resized(flat, side)
        except ModelError:  # a layer depends on the map size
            continue
    return out


def candidates(
    flat: keras.Model,
    config: StructuredConfig,
    x: np.ndarray,
    latency: LatencyModel,
    fronts: dict[int | None, keras.Model] | None = None,
    whole_ms: dict[int | None, float] | None = None,
) -> Grid:
    """Every (front size, branches dropped, R, channel multiple) of the grid, predicted on
    `flat` (`latency` is its own); R 0 (no channel cut) where the front or the branches
    cut already. `fronts`: `front_models` (made here when None); `whole_ms`: each front's
    whole int8 time from one shared run (each measured alone when None)."""
    out, latencies = [], {}
    for side, sized in (front_models(flat, config) if fronts is None else fronts).items():
        timing = latency if side is None else LatencyModel(
            sized, latency.times, latency, (whole_ms or {}).get(side)
        )  # fmt: skip
        latencies[side] = timing
        out += _predicted(sized, config, x, timing, side)
    return Grid(out, latencies)


def _predicted(
    flat: keras.Model,
    config: StructuredConfig,
    x: np.ndarray,
    latency: LatencyModel,
    side: int | None,
) -> list[Candidate]:
    out = []
    multiples = sorted({config.channel_multiple, *MULTIPLES})
    branches = residual_branches(flat)
    order: list[int] = []
    check_count(flat, branches, config.drop_blocks)
    counts = _block_counts(len(branches), config)
    if any(counts):  # scored once: each count drops a prefix of the same order
        order = weakest_first(flat, branches, x, latency.branch_ms)[0]
    for blocks in counts:
        source = flat
        if blocks:
            source = drop_branches(flat, [branches[i] for i in sorted(order[:blocks])])
        scores = channel_scores(source, analyse(source), config.criterion, x)  # once per D
        if blocks or side is not None:  # the cut without channels
            ms = latency.predict_plan(source, None)
            out.append(Candidate(0.0, 1, blocks, ms, latency.unpruned_ms / ms, 0.0, side))
        for sparsity in sorted(config.auto_grid):
            for multiple in multiples:
                point = dataclasses.replace(
                    config, sparsity=sparsity, channel_multiple=multiple, drop_blocks=blocks
                )
                plan = select_channels(source, point, x, latency.channel_costs, scores)
                ms = latency.predict_plan(source, plan)
                speedup = latency.unpruned_ms / ms
                out.append(Candidate(sparsity, multiple, blocks, ms, speedup, _lost(plan), side))
    return out


def shortlist(points: list[Candidate], target: float, size: int) -> list[Candidate]:
    """The cuts worth fine-tuning, `size` in all, of those predicted to meet `target`: per
    front size (its own first, then smaller) the one dropping fewest branches and losing
    least channel importance; then per number of dropped branches (fewest first) the one
    losing least at the largest size; then the next least losing. Importance is
    comparable only at the same front size and branches dropped, so those are weighed by
    the short fine-tunes, not by a score."""
    meeting = sorted(
        (p for p in points if p.predicted_speedup >= target),
        key=lambda p: (-_side(p), p.drop_blocks, p.importance_lost),
    )
    picked: list[Candidate] = []

    def take(cuts: list[Candidate], key: Any) -> None:
        seen = {key(p) for p in picked}
        for p in cuts:
            if len(picked) < size and key(p) not in seen and p not in picked:
                seen.add(key(p))
                picked.append(p)

    take(meeting, _side)
    take(meeting, lambda p: p.drop_blocks)
    take(sorted(meeting, key=lambda p: p.importance_lost), id)
    return picked


def _side(cut: Candidate) -> float:
    return math.inf if cut.resize is None else cut.resize


@dataclass(frozen=True)
class Ranked:
    """A candidate after its short fine-tune."""

    candidate: Candidate
    val_auroc: float | None  # after the short fine-tune (the pruned model's with 0 epochs)
    seconds: float  # the cut, its rebuild and its short fine-tune

    def to_json(self) -> dict[str, Any]:
        return {**self.candidate.to_json(), "val_auroc": self.val_auroc, "seconds": self.seconds}


def _cut(config: StructuredConfig, cut: Candidate, epochs: int | None = None) -> StructuredConfig:
    """`config` at the candidate's R and channel multiple (and `epochs` when given)."""
    point = dataclasses.replace(
        config,
        sparsity=cut.sparsity or None,  # R 0: no channel cut
        channel_multiple=cut.channel_multiple,
        drop_blocks=cut.drop_blocks,
        resize=cut.resize,
    )
    return point if epochs is None else dataclasses.replace(point, finetune_epochs=epochs)


def rank_epochs(config: StructuredConfig) -> int:
    """Epochs of a ranking fine-tune: `speedup_rank_epochs`, at most the full recipe's."""
    return min(config.speedup_rank_epochs, config.recipe().epochs)


def rank_candidates(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: StructuredConfig,
    shortlist: list[Candidate],
    *,
    score: Score,
    seed: int,
    latencies: dict[int | None, LatencyModel],
) -> tuple[list[Ranked], list[StructuredOutcome]]:
    """Each cut of `shortlist` after a short fine-tune (`rank_epochs`, the recipe
    otherwise), best first: highest validation AUROC, ties less importance lost; and their
    outcomes in the same order (full fine-tunes when the short one is as long)."""
    epochs = rank_epochs(config)
    ranked, outcomes = [], []
    for cut in shortlist:
        started = time.perf_counter()
        outcome = prune_structured(
            model, splits, kind, _cut(config, cut, epochs), score=score, seed=seed,
            latency=latencies[cut.resize],
        )  # fmt: skip
        ranked.append(Ranked(cut, shipped_auroc(outcome), time.perf_counter() - started))
        outcomes.append(outcome)
    order = sorted(
        range(len(ranked)),
        key=lambda i: (-_or_worst(ranked[i].val_auroc), ranked[i].candidate.importance_lost),
    )
    return [ranked[i] for i in order], [outcomes[i] for i in order]


def _or_worst(auroc: float | None) -> float:
    return -math.inf if auroc is None else auroc


def _ranking_text(ranked: list[Ranked], epochs: int) -> str:
    if not ranked:
        return ""
    scores = ", ".join(
        f"R {r.candidate.sparsity:g}/M{r.candidate.channel_multiple}/"
        f"D{r.candidate.drop_blocks}"
        + (f"/S{r.candidate.resize}" if r.candidate.resize else "")
        + f" {'undefined' if r.val_auroc is None else f'{r.val_auroc:.4f}'}"
        for r in ranked
    )
    return f"; validation AUROC after the {epochs}-epoch ranking fine-tunes: {scores}"


def recipe_json(recipe: StructuredRecipe, defaults: tuple[str, ...]) -> dict[str, Any]:
    """The report's record of the recipe that ran and which of its fields were defaults."""
    return {
        "epochs": recipe.epochs,
        "augment": list(recipe.augment),
        "lr_schedule": recipe.lr_schedule.value,
        "distill": recipe.distill,
        "defaults": list(defaults),  # fields the user left unset
        "source": "speed-target default" if len(defaults) == len(RECIPE_FIELDS) else (
            "given" if not defaults else "given, the rest speed-target default"
        ),
    }  # fmt: skip


def latency_json(
    latency: LatencyModel,
    original: keras.Model,
    model: keras.Model,
    target: float,
    points: list[Candidate],
    seconds: dict[str, float],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """The report's `pruning.structured.latency` section: predicted next to measured (the
    shipped model and the unpruned `original` timed again, together in interleaved runs:
    `pipeline.device.latency_model.WHOLE_RUNS`)."""
    predicted = latency.predict_model(model)
    started = time.perf_counter()
    unpruned, measured = (float(t) for t in latency.times.profiler.models_ms([original, model]))
    seconds["measure_s"] = time.perf_counter() - started
    return {
        "runtime": latency.runtime,
        "unpruned_ms": latency.unpruned_ms,
        "predicted_ms": predicted,
        "measured_ms": measured,
        "unpruned_measured_ms": unpruned,  # beside `measured_ms`, in the same run
        "predicted_over_measured": predicted / measured if measured > 0 else None,
        "predicted_speedup": latency.unpruned_ms / predicted if predicted > 0 else None,
        "measured_speedup": unpruned / measured if measured > 0 else None,
        "speedup_target": target,
        "approximation": APPROXIMATION,
        "cache": str(latency.times.path),
        "layers_measured": latency.times.measured,
        "candidates": [p.to_json() for p in points],
        **extra,
        "seconds": seconds,
    }


def _missed_text(tried: tuple[dict[str, Any], ...], target: float, epochs: int) -> str:
    """The fully fine-tuned cuts, best-ranked first, with their validation AUROC and, when
    the paired judge named them, the budgets each missed."""
    cuts = "; ".join(
        f"R {c['sparsity']:g}, channel multiple {c['channel_multiple']}, {c['drop_blocks']} "
        "residual branches dropped, "
        + (f"input front {c['resize']}x{c['resize']}, " if c.get("resize") else "")
        + f"predicted {c['predicted_speedup']:.2f}x, validation AUROC "
        + auroc_text(c["val_auroc"])
        + (" (missed: " + ", ".join(c["missed"]) + ")" if c.get("missed") else "")
        for c in tried
    )
    which = "the cut" if len(tried) == 1 else f"the {len(tried)} cuts"
    return (
        f"{which} predicted to reach --speedup-target {target:g} that ranked best, "
        f"fine-tuned {epochs} epochs ({cuts})"
    )


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
    started = time.perf_counter()
    flat = flatten(model).model
    # the resized fronts first: every size's whole file is timed in the same runs
    fronts = front_models(flat, config)
    sides = [None, *(s for s in fronts if s is not None)]
    timed = profiler.models_ms([flat, *(fronts[s] for s in sides[1:])])
    whole = dict(zip(sides, timed, strict=True))
    latency = LatencyModel(flat, LayerTimes(profiler), measured_ms=whole[None])
    seconds = {"latency_model_s": time.perf_counter() - started}
    x_train = splits.model_inputs("train")[:256]
    recipe = config.recipe(images=x_train.ndim == 4)
    extra: dict[str, Any] = {
        "recipe": recipe_json(recipe, config.recipe_defaults()),
        "ranking": {"epochs": 0, "candidates": []},
    }
    # the points are fixed R (not auto), each with the resolved recipe
    config = dataclasses.replace(config.with_recipe(recipe), speedup_target=None)
    grid = candidates(flat, config, x_train, latency, fronts, whole)
    points = grid.points
    seconds["candidates_s"] = time.perf_counter() - started - seconds["latency_model_s"]
    baseline = score(model)
    meeting = shortlist(points, target, config.speedup_candidates)
    record = (latency, target, points, seconds, extra)

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
        return _unchanged(model, config, search(None, reason, ()), *record)
    order = meeting[:1]
    full: list[StructuredOutcome] = []  # the cuts already fine-tuned in full, in order
    ranked: list[Ranked] = []
    if len(meeting) > 1:
        ranking = time.perf_counter()
        ranked, short = rank_candidates(
            model, splits, kind, config, meeting, score=score, seed=seed,
            latencies=grid.latencies,
        )  # fmt: skip
        seconds["rank_s"] = time.perf_counter() - ranking
        order = [r.candidate for r in ranked]
        extra["ranking"] = {
            "epochs": rank_epochs(config),
            "candidates": [r.to_json() for r in ranked],
        }
        if rank_epochs(config) == recipe.epochs:  # the short fine-tunes were the full ones
            full = short[: config.speedup_finetunes]
        del short  # the ranking's models, unless kept above
    tuned = time.perf_counter()
    tried: list[dict[str, Any]] = []
    shipped: StructuredOutcome | None = None
    for i, best in enumerate(order[: config.speedup_finetunes]):
        outcome = full[i] if full else prune_structured(
            model, splits, kind, _cut(config, best), score=score, seed=seed,
            latency=grid.latencies[best.resize],
        )  # fmt: skip
        auroc = shipped_auroc(outcome)
        val_rates, ok, decision = within_budget(
            outcome.model, auroc, baseline, max_prune_drop, rates, paired
        )
        point = {**best.to_json(), "val_auroc": auroc, **val_rates, "within_budget": ok}
        tried.append({**point, **decision_json(decision)})
        if ok:
            shipped = outcome
            break
    seconds["finetune_s"] = time.perf_counter() - tuned
    curve = tuple(tried)
    ranks = _ranking_text(ranked, rank_epochs(config))
    if shipped is None:
        reason = (
            f"{_missed_text(curve, target, recipe.epochs)} "
            f"{'misses' if len(curve) == 1 else 'miss'} the validation budgets (AUROC within "
            f"--max-prune-drop {max_prune_drop:g} of {baseline:.4f}"
            f"{rates_text(rates, paired)}{by_bounds(paired)}){ranks}: no point meets both; "
            "the model goes on without structured pruning. Lower --speedup-target, raise "
            "the budget missed (--max-prune-drop, --val-max-*), or fine-tune longer "
            "(--structured-finetune-epochs)."
        )
        return _unchanged(model, config, search(None, reason, curve), *record)
    place = "the best" if len(curve) == 1 else f"number {len(curve)}"
    missed = _missed_text(curve[:-1], target, recipe.epochs) if len(curve) > 1 else ""
    reason = (
        f"of the cuts predicted to reach --speedup-target {target:g}, "
        + (
            f"{place} of {len(ranked)} after short fine-tunes{ranks}"
            if ranked
            else f"the one losing least channel importance ({best.importance_lost:.3f})"
        )
        + f"; fine-tuned {recipe.epochs} epochs, in the validation budget"
        + (f" ({missed} missed it)" if missed else "")
    )
    section = latency_json(
        grid.latencies[best.resize], flat, shipped.model, target, points, seconds, extra
    )
    section["seconds"]["total_s"] = time.perf_counter() - started
    return dataclasses.replace(shipped, auto=search(best.sparsity, reason, curve), latency=section)


def _unchanged(
    model: keras.Model,
    config: StructuredConfig,
    auto: AutoSearch,
    latency: LatencyModel,
    target: float,
    points: list[Candidate],
    seconds: dict[str, float],
    extra: dict[str, Any],
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
        **extra,
        "seconds": {**seconds, "total_s": sum(seconds.values()) + time.perf_counter() - started},
    }
    return dataclasses.replace(StructuredOutcome.unchanged(model, config, auto), latency=section)
