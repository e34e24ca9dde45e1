"""The enlarging Resizing front at a smaller size: `--structured-resize` and the speed
search's front sizes (issue 34)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline.config import StructuredConfig
from pipeline.errors import ConfigError, ModelError
from pipeline.models import output_kind
from pipeline.models.flatten import flatten
from pipeline.prune import structured
from pipeline.prune.structured.resize import front, resized
from pipeline.prune.structured.speed import Candidate, candidates, search_for_speed, shortlist
from tests import models
from tests.pipeline.prune.test_latency import FakeProfiler, latency_of
from tests.pipeline.prune.test_structured import synthetic_splits


def _nested(size: int = 48) -> keras.Model:
    """The nested MobileNetV2 with random biases and BatchNorm statistics (not no-ops)."""
    keras.utils.set_random_seed(0)
    model = models.nested_mobilenet_v2(size)
    rng = np.random.default_rng(0)
    for w in model.weights:
        if w.name in ("bias", "beta", "moving_mean"):
            w.assign(rng.normal(0.0, 0.3, tuple(w.shape)).astype("float32"))
    return model


def test_the_front_and_the_sides_searched_stay_at_least_the_input() -> None:
    flat = flatten(_nested(48)).model
    found = front(flat)
    assert found is not None and found.size == (48, 48) and found.source == (28, 28)
    assert found.enlarges and found.search_sizes() == (32,)  # 24 < 28 is not tried
    assert flatten(_nested(96)).model is not None
    assert front(flatten(_nested(96)).model).search_sizes() == (64, 48)  # type: ignore[union-attr]
    assert front(models.conv2d()) is None
    deeper = keras.Sequential(  # a Resizing after a strided conv is not the input's front
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, strides=2),
            keras.layers.Resizing(32, 32),
            keras.layers.GlobalAveragePooling2D(),
        ]
    )
    assert front(deeper) is None


def test_resized_keeps_every_weight_and_only_the_front_changes() -> None:
    flat = flatten(_nested(48)).model
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    same = resized(flat, 48)
    np.testing.assert_allclose(same.predict(x, verbose=0), flat.predict(x, verbose=0), atol=1e-6)
    small = resized(flat, 32)
    assert front(small).size == (32, 32)  # type: ignore[union-attr]
    for layer in flat.layers:
        for a, b in zip(
            layer.get_weights(), small.get_layer(layer.name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    assert small.output_shape == flat.output_shape
    assert not np.allclose(small.predict(x, verbose=0), flat.predict(x, verbose=0))


def _flatten_into_dense() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Resizing(16, 16),
            keras.layers.Conv2D(8, 3, padding="same", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid", name="head"),
        ]
    )


def test_a_model_whose_layers_depend_on_the_map_size_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _flatten_into_dense()
    with pytest.raises(ModelError, match="depends on the map size"):
        resized(model, 12)
    # the speed search only proposes sides: it skips them, and fails on a side asked for
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    latency = latency_of(model, tmp_path, FakeProfiler())
    x = np.zeros((4, 8, 8, 1), "float32")
    assert front(model).search_sizes() == (8,)  # type: ignore[union-attr]
    grid = candidates(model, StructuredConfig(sparsity="auto", auto_grid=(0.5,)), x, latency)
    assert set(grid.latencies) == {None} and {p.resize for p in grid.points} == {None}
    with pytest.raises(ModelError, match="depends on the map size"):
        candidates(model, StructuredConfig(sparsity="auto", resize=8), x, latency)
    with pytest.raises(ModelError, match="one Resizing layer"):
        resized(models.conv2d(), 12)
    with pytest.raises(ConfigError, match="--structured-resize must be"):
        StructuredConfig(resize=0)


def test_structured_resize_alone_rebuilds_at_the_smaller_front(tmp_path: Path) -> None:
    from pipeline.prune.macs import total_macs

    model = _nested(48)
    outcome = structured.prune_structured(
        model, synthetic_splits(model, n=16), output_kind(model), StructuredConfig(resize=32),
        score=lambda m: 0.5,
    )  # fmt: skip
    doc = outcome.to_json()
    assert doc["method"] == "resize" and doc["removed_channels"] == 0
    assert doc["resize"]["before"] == [48, 48] and doc["resize"]["after"] == [32, 32]
    assert doc["resize"]["input"] == [28, 28] and doc["resize"]["enlarges"]
    assert total_macs(outcome.model) < total_macs(model) * 0.5  # (32/48)^2 = 0.44 of the maps
    assert front(outcome.model).size == (32, 32)  # type: ignore[union-attr]


def _cut(side: int | None, blocks: int, lost: float, speedup: float = 2.5) -> Candidate:
    return Candidate(0.5, 8, blocks, 1.0 / speedup, speedup, lost, side)


def test_shortlist_takes_one_per_front_size_then_one_per_branch_count() -> None:
    points = [
        _cut(None, 2, 0.05),
        _cut(None, 0, 0.30),
        _cut(64, 0, 0.10),
        _cut(64, 0, 0.02),
        _cut(48, 0, 0.01),
        _cut(48, 3, 0.00, speedup=1.5),  # misses the target
        _cut(None, 5, 0.01),
    ]
    picked = shortlist(points, 2.0, 5)
    assert [(p.resize, p.drop_blocks, p.importance_lost) for p in picked] == [
        (None, 0, 0.30),  # the front's own size first: fewest branches
        (64, 0, 0.02),
        (48, 0, 0.01),
        (None, 2, 0.05),  # then the branch counts not yet taken, at the largest size
        (None, 5, 0.01),
    ]
    assert shortlist(points, 2.0, 2) == picked[:2]


def test_the_grid_tries_smaller_fronts_measured_on_their_own_shapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    flat = flatten(_nested(48)).model
    profiler = FakeProfiler()
    latency = latency_of(flat, tmp_path, profiler)
    x = np.random.default_rng(0).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
    config = StructuredConfig(sparsity="auto", min_channels=2, auto_grid=(0.5,), drop_blocks=1)
    grid = candidates(flat, config, x, latency)
    assert set(grid.latencies) == {None, 32}
    small = grid.latencies[32]
    assert small.unpruned_ms == latency.unpruned_ms  # speedups against the file as it is
    at_32 = resized(flat, 32)
    assert small.predict_model(at_32) == pytest.approx(profiler.model_ms(at_32), rel=1e-6)
    for side in (None, 32):  # the branches alone (R 0) at each size
        assert any(p.resize == side and p.sparsity == 0.0 for p in grid.points)
    by_side = {
        p.resize: p.predicted_ms
        for p in grid.points
        if (p.sparsity, p.channel_multiple) == (0.5, 1)
    }
    assert by_side[32] < by_side[None]
    fixed = candidates(flat, StructuredConfig(sparsity="auto", resize=32), x, latency)
    assert {p.resize for p in fixed.points} == {32}


@pytest.mark.slow  # 7 s: the quick tier keeps the front's rebuild and grid tests
def test_the_speed_search_can_ship_a_smaller_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    model = _nested(48)
    config = StructuredConfig(
        sparsity="auto", speedup_target=1.8, min_channels=2, auto_grid=(0.25,),
        finetune_epochs=0, speedup_candidates=1,
    )  # fmt: skip
    profiler = FakeProfiler()
    outcome = search_for_speed(
        model, synthetic_splits(model, n=16), output_kind(model), config, 1.0,
        score=lambda m: 0.9, profiler=profiler, seed=0,
    )  # fmt: skip
    # the own-size and the 32x32 files in one run, then the unpruned and the shipped one
    assert profiler.model_batches == [2, 2]
    doc = outcome.to_json()
    lat = doc["latency"]
    meeting = [c for c in lat["candidates"] if c["predicted_speedup"] >= 1.8]
    assert meeting and {c["resize"] for c in meeting} <= {None, 32}
    first = max(meeting, key=lambda c: (c["resize"] is None, -c["drop_blocks"]))
    assert outcome.config.resize == first["resize"]
    if first["resize"] is not None:
        assert doc["resize"]["after"] == [32, 32] and doc["method"].startswith("resize")
    assert 0.85 <= lat["predicted_over_measured"] <= 1.15
    assert lat["measured_speedup"] == lat["unpruned_measured_ms"] / lat["measured_ms"]
