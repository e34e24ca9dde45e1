"""`--structured-sparsity auto`: the largest channel fraction the validation data accepts.

The fractions R of `StructuredConfig.auto_grid` are tried from the largest down. Each runs
the whole structured step (`prune_structured`: the configured `--drop-blocks`, the
channels R, the fine-tuning recipe) from the original model and is judged on validation
exactly as `--sparsity auto` judges its points (`pipeline.prune.auto.within_budget`). The
first R in budget is the largest in budget: the search stops there, so it costs one
structured step per point tried. When no R is in budget, or the original's validation
AUROC is undefined, the model goes on unchanged, as if structured pruning were off.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pipeline.config import StructuredConfig
from pipeline.prune.auto import (
    AutoSearch,
    RateJudge,
    auroc_text,
    by_bounds,
    decision_json,
    judge_fields,
    point_text,
    rates_text,
    within_budget,
)
from pipeline.prune.structured.latency import Profiler
from pipeline.prune.structured.outcome import StructuredOutcome, shipped_auroc
from pipeline.prune.structured.speed import search_for_speed
from pipeline.prune.structured.step import Score, prune_structured

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.evaluate.decision import Decision, ModelJudge
    from pipeline.models import OutputKind


def _point(
    sparsity: float,
    outcome: StructuredOutcome,
    val_rates: dict[str, Any],
    ok: bool,
    decision: Decision | None,
) -> dict[str, Any]:
    """One point of the structured auto curve."""
    auroc = outcome.val_auroc
    return {
        "sparsity": sparsity,
        "macs_after": outcome.macs_after,
        "params_after": outcome.params_after,
        "val_auroc_pruned": auroc["pruned"],
        "val_auroc_finetuned": auroc["finetuned"],
        "val_auroc": shipped_auroc(outcome),
        **{f"val_{k}": v for k, v in val_rates.items()},
        "within_budget": ok,
        **decision_json(decision),
    }


def _none_reason(
    config: StructuredConfig,
    max_prune_drop: float,
    baseline: float,
    rates: RateJudge | None,
    curve: list[dict[str, Any]],
    paired: ModelJudge | None,
) -> str:
    tried = ", ".join(f"{p['sparsity']:g} -> {point_text(p)}" for p in curve)
    fewer_blocks = f", drop fewer residual branches (--drop-blocks {config.drop_blocks})"
    return (
        f"no channel fraction of the grid kept validation AUROC within --max-prune-drop "
        f"{max_prune_drop:g} of the original {baseline:.4f}{rates_text(rates, paired)}"
        f"{by_bounds(paired)} (R {tried}); "
        "the model goes on without structured pruning. Raise --max-prune-drop, fine-tune "
        "longer (--structured-finetune-epochs)"
        + (fewer_blocks if config.drop_blocks else "")
        + f", try another --structured-criterion than {config.criterion.value}, or pass "
        "--structured-sparsity R to prune anyway."
    )


def search_structured(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: StructuredConfig,
    max_prune_drop: float,
    *,
    score: Score,
    seed: int = 0,
    rates: RateJudge | None = None,
    profiler: Profiler | None = None,
    paired: ModelJudge | None = None,
) -> StructuredOutcome:
    """The structured auto search (with `config.speedup_target`, the speed-target search of
    `pipeline.prune.structured.speed`, measuring with `profiler`).

    Args:
        model: the trained model; not changed.
        splits: as `prune_structured` takes them; the val split judges every point.
        kind: the model's output kind.
        config: a `StructuredConfig` with sparsity `auto`; every point runs it with
            sparsity R.
        max_prune_drop: the validation AUROC a point may lose against `model`'s.
        score: validation AUROC of a model (None when undefined).
        seed: seed of fine-tuning.
        rates: with an operating point, the judge of validation rates against `model`'s.
        profiler: measures int8 latency on the target; needed with a speedup target.
        paired: the paired judge against `model` (`--decide`); with it, it alone judges.

    Returns:
        The outcome of the chosen R with its `auto` search; when none is chosen, an
        unchanged outcome (`StructuredOutcome.unchanged`) whose model is `model`.
    """
    if config.speedup_target is not None:
        if profiler is None:
            raise ValueError("a speedup target needs a profiler of the target")
        return search_for_speed(
            model, splits, kind, config, max_prune_drop,
            score=score, profiler=profiler, seed=seed, rates=rates, paired=paired,
        )  # fmt: skip
    baseline = score(model)
    curve: list[dict[str, Any]] = []

    def search(chosen: float | None, reason: str) -> AutoSearch:
        return AutoSearch(
            config.auto_grid, max_prune_drop, baseline, tuple(curve), chosen, reason,
            **judge_fields(rates, paired),
        )  # fmt: skip

    if baseline is None:
        reason = (
            "validation AUROC of the original model is undefined (the validation split "
            "holds a single class), so auto cannot judge structured pruning; the model goes "
            "on without structured pruning. Pass --structured-sparsity R to prune anyway."
        )
        return StructuredOutcome.unchanged(model, config, search(None, reason))
    for sparsity in sorted(config.auto_grid, reverse=True):
        point = dataclasses.replace(config, sparsity=sparsity)
        outcome = prune_structured(model, splits, kind, point, score=score, seed=seed)
        val_rates, ok, decision = within_budget(
            outcome.model, shipped_auroc(outcome), baseline, max_prune_drop, rates, paired
        )
        curve.append(_point(sparsity, outcome, val_rates, ok, decision))
        if ok:  # the largest in budget: smaller R are not tried
            reason = (
                f"largest channel fraction of the grid whose validation AUROC "
                f"{auroc_text(shipped_auroc(outcome))} stays within {max_prune_drop:g} of the "
                f"original {baseline:.4f}{rates_text(rates, paired)}{by_bounds(paired)} (tried "
                "from the largest down)"
            )
            return dataclasses.replace(outcome, auto=search(sparsity, reason))
    reason = _none_reason(config, max_prune_drop, baseline, rates, curve, paired)
    return StructuredOutcome.unchanged(model, config, search(None, reason))
