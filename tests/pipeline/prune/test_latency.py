"""The latency model of structured pruning and `--speedup-target`, with a fake profiler:
the arithmetic, the cache and the search, not the timing (that is bench/latency_model.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline.config import StructuredConfig
from pipeline.errors import ConfigError
from pipeline.models import output_kind
from pipeline.models.flatten import flatten
from pipeline.prune import structured
from pipeline.prune.structured.latency import (
    LatencyModel,
    LayerShape,
    LayerTimes,
    layer_shapes,
)
from pipeline.prune.structured.planning import importance_per_ms
from pipeline.prune.structured.speed import search_for_speed
from tests.pipeline.prune.test_structured import randomized, synthetic_splits


class FakeProfiler:
    """Time of a layer: a fixed cost plus its MACs on 8-channel tiles (as int8 kernels);
    a model: the sum of its layers plus a fixed rest. Counts what it was asked."""

    def __init__(self, runtime: str = "fake", rest_ms: float = 0.05) -> None:
        self.runtime = runtime
        self.rest_ms = rest_ms
        self.layer_calls: list[int] = []
        self.model_calls = 0
        self.model_batches: list[int] = []  # models per models_ms call

    @staticmethod
    def cost(s: LayerShape) -> float:
        def tiles(c: int) -> int:
            return math.ceil(c / 8) * 8

        positions = math.prod(s.input_shape[:-1]) / (math.prod(s.strides) or 1)
        kernel = math.prod(s.kernel_size) or 1
        work = tiles(s.in_channels) * (1 if s.depthwise else tiles(s.out_channels))
        return 0.01 + 1e-6 * positions * kernel * work

    def layers_ms(self, shapes: Sequence[LayerShape]) -> list[float]:
        self.layer_calls.append(len(shapes))
        return [self.cost(s) for s in shapes]

    def models_ms(self, models: Sequence[keras.Model]) -> list[float]:
        self.model_calls += 1
        self.model_batches.append(len(models))
        return [self.model_ms(m) for m in models]

    def model_ms(self, model: keras.Model) -> float:
        shapes = layer_shapes(flatten(model).model)
        return sum(self.cost(s) for s in shapes.values()) + self.rest_ms


def latency_of(model: keras.Model, tmp_path: Path, profiler: FakeProfiler) -> LatencyModel:
    return LatencyModel(flatten(model).model, LayerTimes(profiler, tmp_path))


def test_layer_times_are_cached_on_disk_by_shape_and_runtime(tmp_path: Path) -> None:
    model = randomized("structured_functional")
    first = FakeProfiler()
    latency = latency_of(model, tmp_path, first)
    assert first.layer_calls and latency.times.measured == sum(first.layer_calls)
    cached = json.loads(latency.times.path.read_text())
    assert latency.times.path.parent == tmp_path and len(cached) == latency.times.measured
    again = FakeProfiler()
    assert latency_of(model, tmp_path, again).times.measured == 0
    assert again.layer_calls == []  # every shape came from the cache
    other = FakeProfiler(runtime="other-device")
    assert latency_of(model, tmp_path, other).times.measured == len(cached)


def test_cache_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path / "c"))
    times = LayerTimes(FakeProfiler())
    assert times.path.parent == tmp_path / "c"


def test_prediction_of_the_unpruned_model_is_its_measurement(tmp_path: Path) -> None:
    model = randomized("structured_functional")
    profiler = FakeProfiler()
    latency = latency_of(model, tmp_path, profiler)
    assert latency.predict_model(flatten(model).model) == pytest.approx(latency.unpruned_ms)
    assert latency.rest_ms == pytest.approx(profiler.rest_ms)


@pytest.mark.parametrize("kind", ["structured_functional", "structured_sequential", "mobilenet_v2"])
@pytest.mark.parametrize("sparsity", [0.3, 0.6])
def test_prediction_of_a_pruned_model_is_within_tolerance(
    tmp_path: Path, kind: str, sparsity: float
) -> None:
    """Interpolated anchors against the fake's own time of the rebuilt model (tiles make
    the fake's time a step function of the widths, which the interpolation smooths)."""
    model = randomized(kind)
    profiler = FakeProfiler()
    latency = latency_of(model, tmp_path, profiler)
    splits = synthetic_splits(model, n=16)
    config = StructuredConfig(sparsity=sparsity, min_channels=2)
    outcome = structured.prune_structured(
        model, splits, output_kind(model), config, score=lambda m: 0.5, latency=latency
    )
    predicted = latency.predict_model(outcome.model)
    assert predicted < latency.unpruned_ms
    assert predicted == pytest.approx(profiler.model_ms(outcome.model), rel=0.15)


def test_plan_prediction_equals_the_rebuilt_model_prediction(tmp_path: Path) -> None:
    model = flatten(randomized("mobilenet_v2")).model
    latency = latency_of(model, tmp_path, FakeProfiler())
    config = StructuredConfig(sparsity=0.5, min_channels=2, channel_multiple=8)
    plan = structured.select_channels(model, config, cost=latency.channel_costs)
    rebuilt = structured.rebuild(model, plan)
    assert latency.predict_plan(model, plan) == pytest.approx(latency.predict_model(rebuilt))


def test_importance_per_ms_divides_by_the_group_cost() -> None:
    scores = {1: np.array([1.0, 2.0]), 2: np.array([1.0, 2.0])}
    ranked = importance_per_ms(scores, {1: 3.0, 2: 1.0})  # mean cost 2
    np.testing.assert_allclose(ranked[1], [2 / 3, 4 / 3])
    np.testing.assert_allclose(ranked[2], [2.0, 4.0])
    free = importance_per_ms(scores, {1: 0.0, 2: 1.0})  # a group saving nothing goes last
    assert free[1].min() > free[2].max()


def test_costly_groups_give_channels_first(tmp_path: Path) -> None:
    model = flatten(randomized("mobilenet_v2")).model
    latency = latency_of(model, tmp_path, FakeProfiler())
    graph = structured.analyse(model)
    costs = latency.channel_costs(graph)
    assert set(costs) == set(graph.prunable()) and max(costs.values()) > 0
    config = StructuredConfig(sparsity=0.3, min_channels=1)
    by_score = structured.select_channels(model, config)
    by_time = structured.select_channels(model, config, cost=latency.channel_costs)
    assert by_score.removed == by_time.removed  # the same number of channels go
    assert latency.predict_plan(model, by_time) < latency.predict_plan(model, by_score)


def test_branches_are_dropped_by_importance_per_ms() -> None:
    model = flatten(randomized("mobilenet_v2")).model
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    branches = structured.residual_branches(model)
    scores = structured.branch_scores(model, branches, x)
    costly = branches[int(np.argmax(scores))]  # the strongest branch, made very slow

    def branch_ms(b: structured.ResidualBranch) -> float:
        return 1e6 if b == costly else 1.0

    _, by_score, _ = structured.drop_weakest_branches(model, x, 1)
    _, by_time, _ = structured.drop_weakest_branches(model, x, 1, branch_ms)
    assert by_score[0]["add"] != costly.add and by_time[0]["add"] == costly.add


def _speed_search(
    model: keras.Model, tmp_path: Path, target: float, score: float = 0.9
) -> structured.StructuredOutcome:
    # no fine-tuning and no ranking (test_speed_search has it): the least loss is built
    config = StructuredConfig(
        sparsity="auto", speedup_target=target, min_channels=2, auto_grid=(0.25, 0.5, 0.75),
        finetune_epochs=0, speedup_candidates=1,
    )  # fmt: skip
    return search_for_speed(
        model, synthetic_splits(model, n=16), output_kind(model), config, 0.05,
        score=lambda m: score, profiler=FakeProfiler(), seed=0,
    )  # fmt: skip


def test_speed_target_picks_the_least_loss_that_meets_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    model = randomized("mobilenet_v2")
    outcome = _speed_search(model, tmp_path, target=1.3)
    doc = json.loads(json.dumps(outcome.to_json()))
    lat = doc["latency"]
    meeting = [c for c in lat["candidates"] if c["predicted_speedup"] >= 1.3]
    # one candidate (no ranking): the fewest branches dropped, then the least importance lost
    chosen = min(meeting, key=lambda c: (c["drop_blocks"], c["importance_lost"]))
    assert doc["auto"]["chosen_sparsity"] == chosen["sparsity"] == outcome.config.sparsity
    assert outcome.config.channel_multiple == chosen["channel_multiple"]
    assert lat["predicted_speedup"] >= 1.3 * 0.99
    assert 0.85 <= lat["predicted_over_measured"] <= 1.15
    assert lat["seconds"]["total_s"] >= lat["seconds"]["finetune_s"] >= 0


def test_speed_target_out_of_reach_says_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    model = randomized("structured_functional")
    outcome = _speed_search(model, tmp_path, target=1000.0)
    doc = outcome.to_json()
    assert outcome.model is model and doc["method"] == "none"
    assert "--speedup-target 1000" in doc["latency"]["warning"] == doc["auto"]["reason"]


def test_speed_target_out_of_budget_says_no_point_meets_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    model = randomized("structured_functional")
    scores = iter([0.9, 0.9, 0.5, 0.5])  # original, then the pruned cut far below

    config = StructuredConfig(
        sparsity="auto", speedup_target=1.2, min_channels=2, finetune_epochs=0,
        speedup_candidates=1,
    )  # fmt: skip
    outcome = search_for_speed(
        model, synthetic_splits(model, n=16), output_kind(model), config, 0.05,
        score=lambda m: next(scores), profiler=FakeProfiler(),
    )  # fmt: skip
    assert outcome.model is model
    assert "no point meets both" in outcome.to_json()["latency"]["warning"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sparsity": 0.5, "speedup_target": 2.0}, "needs --structured-sparsity auto"),
        ({"sparsity": "auto", "speedup_target": 1.0}, "--speedup-target must be"),
    ],
)
def test_speedup_target_is_checked(kwargs: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        StructuredConfig(**kwargs)


def test_speedup_target_is_a_prune_key() -> None:
    from pipeline.config.options import for_command

    option = next(o for o in for_command("build") if o.dest == "speedup_target")
    assert option.section == "prune"
    assert dataclasses.fields(StructuredConfig)  # the field it sets exists
    assert StructuredConfig(sparsity="auto", speedup_target=2).speedup_target == 2


@pytest.mark.slow
def test_build_with_a_speed_target_reports_predicted_and_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.prune.structured import probe
    from tests import models
    from tests.pipeline.prune.test_structured import build_on_random_images

    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(probe, "LocalProfiler", lambda calibration, threads: FakeProfiler())
    flags = ["--structured-sparsity", "auto", "--speedup-target", "1.2", "--max-prune-drop", "1"]
    flags += [
        "--structured-finetune-epochs",
        "1",
        "--speedup-candidates",
        "1",
    ]  # ranking: fast tests
    out = build_on_random_images(tmp_path, models.structured_functional(), flags)
    report = json.loads((out / "report.json").read_text())
    section = report["pruning"]["structured"]
    speed = section["latency"]
    assert speed["speedup_target"] == 1.2 and speed["candidates"]
    if "warning" in speed:  # random data: the cut may fall outside the rate budgets
        assert section["auto"]["chosen_sparsity"] is None
        assert any(speed["warning"] in w for w in report["warnings"])
    else:
        # the fake profiler's fixed times: the chosen cut's prediction meets the target
        assert speed["predicted_speedup"] >= speed["speedup_target"] * 0.99
        assert speed["measured_ms"] > 0 and speed["predicted_ms"] > 0
        assert section["auto"]["chosen_sparsity"] is not None


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (
            "structured_sparsity = 0.5\nspeedup_target = 2.0\n",
            "job.toml: [prune] speedup_target = 2.0 needs",
        ),
        (
            'latency_target = "local"\n',
            'job.toml: [prune] latency_target = "local" says where --speedup-target',
        ),
    ],
)
def test_speed_options_out_of_their_mode_exit_2_naming_the_key(
    job: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    path = tmp_path / "job.toml"
    path.write_text("[prune]\n" + job)
    assert main(["build", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert expected in err  # names its source
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_scores_computed_once_give_the_same_plan() -> None:
    from pipeline.prune.structured.scoring import channel_scores

    model = flatten(randomized("mobilenet_v2")).model
    config = StructuredConfig(sparsity=0.4, min_channels=2, channel_multiple=8)
    scores = channel_scores(model, structured.analyse(model), config.criterion)
    again = structured.select_channels(model, config, scores=scores)
    fresh = structured.select_channels(model, config)
    assert again.kept.keys() == fresh.kept.keys()
    assert all(np.array_equal(again.kept[g], fresh.kept[g]) for g in fresh.kept)
