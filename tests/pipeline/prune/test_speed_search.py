"""The speed-target search's recipe and its ranking of candidates by short fine-tunes,
with the fake profiler of test_latency and scores the tests control."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from pipeline.cli.options import build_config
from pipeline.config import SPEED_TARGET_RECIPE, Decide, StructuredConfig, StructuredRecipe
from pipeline.errors import ConfigError
from pipeline.models import output_kind
from pipeline.prune.structured import speed
from pipeline.release.report.tables import speed_search_line
from tests.pipeline.prune.test_latency import FakeProfiler
from tests.pipeline.prune.test_structured import randomized, synthetic_splits

SPEED = {"sparsity": "auto", "speedup_target": 1.2, "min_channels": 2}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, SPEED_TARGET_RECIPE),
        ({"finetune_epochs": 5}, dataclasses.replace(SPEED_TARGET_RECIPE, epochs=5)),
        (
            {"finetune_epochs": 0, "augment": ("hflip",), "lr_schedule": "constant", "distill": 0},
            StructuredRecipe(0, ("hflip",)),
        ),
    ],
)
def test_speed_target_recipe_fills_what_the_user_left_unset(
    given: dict[str, Any], expected: StructuredRecipe
) -> None:
    assert StructuredConfig(**SPEED, **given).recipe() == expected
    plain = StructuredConfig(sparsity=0.5, **given).recipe()  # no target: no default recipe
    assert plain.epochs == given.get("finetune_epochs", 0)


def test_recipe_without_a_speed_target_is_unchanged() -> None:
    assert StructuredConfig(sparsity="auto").recipe() == StructuredRecipe()  # no fine-tuning
    assert StructuredConfig(**SPEED).recipe(images=False).augment == ()  # shift: images only


@pytest.mark.parametrize(
    ("flags", "epochs"),
    [([], SPEED_TARGET_RECIPE.epochs), (["--finetune-epochs", "4"], 4)],
)
def test_flags_leave_the_recipe_to_the_speed_target(flags: list[str], epochs: int) -> None:
    argv = ["build", "--structured-sparsity", "auto", "--speedup-target", "2", *flags]
    assert build_config(argv).structured.recipe().epochs == epochs
    assert build_config(["build", "--structured-sparsity", "0.5"]).structured.recipe().epochs == 0


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"speedup_candidates": 0}, "--speedup-candidates"),
        ({"speedup_rank_epochs": -1}, "rank"),
        ({"speedup_finetunes": 0}, "--speedup-finetunes"),
    ],
)
def test_ranking_options_are_checked(kwargs: dict[str, int], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        StructuredConfig(**SPEED, **kwargs)


def _search(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    config: StructuredConfig,
    score: Any,
    train_epochs: int | None = None,
    judge: Any = None,
) -> tuple[Any, list[StructuredConfig]]:
    """The search on a tiny model; every structured step's config is recorded (and run
    with `train_epochs` when given: the scores do not depend on training, and the test
    stays fast)."""
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    steps: list[StructuredConfig] = []
    real = speed.prune_structured

    def recorded(*args: Any, **kwargs: Any) -> Any:
        steps.append(args[3])
        if train_epochs is not None:
            args = (*args[:3], dataclasses.replace(args[3], finetune_epochs=train_epochs))
        return real(*args, **kwargs)

    monkeypatch.setattr(speed, "prune_structured", recorded)
    model = randomized("structured_functional")
    splits = synthetic_splits(model, n=16)
    outcome = speed.search_for_speed(
        model, splits, output_kind(model), config, 0.05,
        score=score(model), profiler=FakeProfiler(), seed=0,
        paired=judge(model, splits) if judge else None,
    )  # fmt: skip
    return json.loads(json.dumps(outcome.to_json())), steps


def _smaller_scores_higher(original: keras.Model) -> Any:
    """Validation AUROC rising as parameters fall: the ranking's pick is the smallest cut,
    which is not the one losing least importance."""
    params = original.count_params()
    return lambda m: 0.6 + 0.3 * (1 - m.count_params() / params)


def test_default_recipe_runs_when_no_fine_tuning_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc, steps = _search(
        monkeypatch, tmp_path, StructuredConfig(**SPEED), _smaller_scores_higher, train_epochs=0
    )
    ranked, full = steps[:-1], steps[-1]
    assert full.recipe() == SPEED_TARGET_RECIPE  # the image model: shift too
    assert [s.recipe().epochs for s in ranked] == [3] * len(ranked) and len(ranked) > 1
    recipe = doc["latency"]["recipe"]
    assert recipe["epochs"] == 40 and recipe["source"] == "speed-target default"
    assert recipe["augment"] == ["shift"] and recipe["lr_schedule"] == "cosine"


def test_ranking_picks_the_best_short_fine_tune_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = StructuredConfig(**SPEED, finetune_epochs=2, speedup_rank_epochs=1)
    doc, steps = _search(monkeypatch, tmp_path, config, _smaller_scores_higher, train_epochs=0)
    lat = doc["latency"]
    ranking = lat["ranking"]["candidates"]
    meeting = [c for c in lat["candidates"] if c["predicted_speedup"] >= 1.2]
    least_loss = min(meeting, key=lambda c: c["importance_lost"])
    best = max(ranking, key=lambda c: c["val_auroc"])
    assert (
        len(ranking) == min(StructuredConfig().speedup_candidates, len(meeting))
        and lat["ranking"]["epochs"] == 1
    )
    assert [s.recipe().epochs for s in steps] == [1] * len(ranking) + [2]
    assert doc["auto"]["chosen_sparsity"] == best["sparsity"] != least_loss["sparsity"]
    assert ranking[0] == best and all(c["seconds"] > 0 for c in ranking)
    assert lat["seconds"]["rank_s"] >= sum(c["seconds"] for c in ranking)
    assert lat["recipe"]["source"] == "given, the rest speed-target default"
    line = speed_search_line(doc)  # the build's console line
    assert (
        f"R {best['sparsity']:g} at channel multiple {best['channel_multiple']} with "
        f"{best['drop_blocks']} residual branches dropped" in line
    )
    assert f"{len(ranking)} cuts ranked by 1-epoch fine-tunes" in line and "rank " in line


def test_no_point_meets_both_names_each_short_fine_tune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = StructuredConfig(**SPEED, finetune_epochs=0)  # ranked and judged as pruned

    def score(original: keras.Model) -> Any:
        params = original.count_params()
        return lambda m: 0.9 if m is original else 0.5 + 0.1 * m.count_params() / params

    doc, _ = _search(monkeypatch, tmp_path, config, score)
    warning = doc["latency"]["warning"]
    assert "no point meets both" in warning and doc["method"] == "none"
    for c in doc["latency"]["ranking"]["candidates"]:
        assert (
            f"R {c['sparsity']:g}/M{c['channel_multiple']}/D{c['drop_blocks']} {c['val_auroc']:.4f}"
            in warning
        )


@pytest.mark.parametrize(
    ("finetunes", "failing"),
    [
        (1, 1),
        pytest.param(2, 1, marks=pytest.mark.slow),
        pytest.param(2, 2, marks=pytest.mark.slow),
    ],
)
def test_a_best_ranked_cut_missing_its_budget_passes_the_turn_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, finetunes: int, failing: int
) -> None:
    """After the ranking, the first `failing` full fine-tunes (epochs 2) score below the
    budget: with two full fine-tunes allowed and one failing, the next-ranked cut gets one
    and ships; otherwise nothing ships and the warning names each fine-tuned cut."""
    full_steps = []
    real = speed.prune_structured

    def phased(*args: Any, **kwargs: Any) -> Any:  # runs each step untrained (fast)
        if args[3].finetune_epochs == 2:
            full_steps.append(args[3])
        untrained = dataclasses.replace(args[3], finetune_epochs=0)
        return real(*args[:3], untrained, *args[4:], **kwargs)

    monkeypatch.setattr(speed, "prune_structured", phased)

    def score(original: keras.Model) -> Any:
        ranking = _smaller_scores_higher(original)
        return lambda m: (
            0.1 if 1 <= len(full_steps) <= failing and m is not original else ranking(m)
        )

    config = StructuredConfig(
        **SPEED, finetune_epochs=2, speedup_rank_epochs=1, speedup_finetunes=finetunes
    )
    doc, steps = _search(monkeypatch, tmp_path, config, score)
    ranking = doc["latency"]["ranking"]["candidates"]
    curve = doc["auto"]["curve"]
    assert [s.recipe().epochs for s in steps] == [1] * len(ranking) + [2] * finetunes
    assert len(curve) == finetunes and len(ranking) > 1
    fields = ("sparsity", "channel_multiple", "drop_blocks", "resize")
    for point, cut in zip(curve, ranking, strict=False):  # fine-tuned in the ranking's order
        assert {k: point[k] for k in fields} == {k: cut[k] for k in fields}
    assert curve[0]["val_auroc"] == pytest.approx(0.1) and not curve[0]["within_budget"]
    if failing == finetunes:
        warning = doc["latency"]["warning"]
        assert doc["method"] == "none" and "no point meets both" in warning
        cuts = "the cut" if finetunes == 1 else "the 2 cuts"
        assert f"{cuts} predicted to reach --speedup-target 1.2 that ranked best" in warning
        assert warning.count("validation AUROC 0.1000") == finetunes
        return
    assert curve[1]["within_budget"] and curve[1]["val_auroc"] == ranking[1]["val_auroc"]
    assert doc["auto"]["chosen_sparsity"] == ranking[1]["sparsity"]
    assert (
        "number 2 of" in doc["auto"]["reason"]
        and "validation AUROC 0.1000" in doc["auto"]["reason"]
    )
    assert doc["latency"]["measured_ms"] > 0


def test_a_cut_missing_only_a_rate_budget_is_not_said_to_lose_auroc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cut keeps the reference's ranking (AUROC unchanged) but moves some of the
    positives below the threshold: the warning names the sensitivity budget each fully
    fine-tuned cut missed, and not an AUROC loss."""
    from pipeline.config.budget import ValidationBudget
    from pipeline.evaluate.decision import DecisionRule, ModelJudge, PairedJudge

    def judge(original: keras.Model, splits: Any) -> ModelJudge:
        y = splits.y_val.astype(np.int64)
        ref = np.where(y == 1, 0.9, 0.1)

        def probs(m: keras.Model) -> np.ndarray:
            p = ref if m is original else np.where(y == 1, np.linspace(0.3, 0.8, len(y)), 0.1)
            return np.stack([1 - p, p], axis=1)

        budget = ValidationBudget(0.02, 0.05, 1.0)
        rule = DecisionRule(decide=Decide.POINT)
        return ModelJudge(
            probs, PairedJudge.of_reference(probs(original), y, 1, 0.5, 0.05, budget, rule)
        )

    config = StructuredConfig(**SPEED, finetune_epochs=0, speedup_finetunes=2)
    doc, _ = _search(monkeypatch, tmp_path, config, _smaller_scores_higher, judge=judge)
    curve, warning = doc["auto"]["curve"], doc["latency"]["warning"]
    assert doc["method"] == "none" and len(curve) == 2
    for point in curve:
        assert point["missed"] and all("sensitivity" in m for m in point["missed"])
        assert f"(missed: {', '.join(point['missed'])})" in warning
    assert "the 2 cuts" in warning and "miss the validation budgets (AUROC within" in warning
    assert "beyond" not in warning
