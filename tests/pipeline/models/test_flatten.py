"""Nested functional/Sequential models flattened into one graph for every pruning path."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline import prune as pruning
from pipeline.config import PruneConfig, StructuredConfig, StructuredCriterion
from pipeline.models import output_kind
from pipeline.models.flatten import SEPARATOR, flatten, needs_flattening
from pipeline.prune import structured
from pipeline.prune.macs import count_macs, total_macs
from pipeline.release.warnings import flatten_warnings as _flatten_warnings
from tests import models
from tests.pipeline.prune.test_structured import synthetic_splits

FLATTENABLE = {
    "functional": (models.nested_functional, ["backbone"]),
    "sequential": (models.nested_sequential, ["features"]),
    "two_levels": (models.nested_two_levels, ["middle", "middle/inner"]),
    "sequential_in_sequential": (models.nested_in_sequential, ["inner"]),
    "mobilenet_v2": (models.nested_mobilenet_v2, ["mobilenetv2_0.35_32"]),
}


def randomized(build: object, seed: int = 0) -> keras.Model:
    """The model with random biases and BatchNorm statistics (neither a no-op)."""
    keras.utils.set_random_seed(seed)
    model = build()  # type: ignore[operator]
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if w.name in ("bias", "beta", "moving_mean"):
            w.assign(rng.normal(0.0, 0.3, tuple(w.shape)).astype("float32"))
        elif w.name in ("gamma", "moving_variance"):
            w.assign(rng.uniform(0.5, 1.5, tuple(w.shape)).astype("float32"))
    return model


def images(model: keras.Model, n: int = 6) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(1).uniform(0, 255, (n, *shape)).astype("float32")


@pytest.mark.parametrize("kind", list(FLATTENABLE))
def test_flattened_model_equals_the_nested_one(kind: str) -> None:
    build, nested = FLATTENABLE[kind]
    model = randomized(build)
    flat = flatten(model)
    assert list(flat.flattened) == nested and flat.skipped == ()
    assert not needs_flattening(flat.model)
    assert not any(isinstance(layer, keras.Model) for layer in flat.model.layers)
    x = images(model)
    for training in (False, True):  # BatchNorm in both modes (batch statistics too)
        want = np.asarray(model(x, training=training))
        got = np.asarray(flat.model(x, training=training))
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert flat.model.count_params() == model.count_params()
    # no shared variable: changing the flat model leaves the original alone
    before = [w.copy() for w in model.get_weights()]
    flat.model.set_weights([np.zeros_like(w) for w in flat.model.get_weights()])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_the_flattened_model_keeps_the_loss_and_optimizer_it_was_compiled_with() -> None:
    """Fine-tuning takes a fresh copy of the model's own optimizer: flattening must not
    swap a nested model's SGD and schedule for a default Adam."""
    model = models.nested_functional()
    rate = keras.optimizers.schedules.CosineDecay(0.05, 100)
    model.compile(optimizer=keras.optimizers.SGD(rate, momentum=0.8), loss="mse")
    flat = flatten(model).model
    assert flat is not model and isinstance(flat.optimizer, keras.optimizers.SGD)
    assert flat.optimizer is not model.optimizer and flat.loss == "mse"
    config = flat.optimizer.get_config()
    assert config["momentum"] == pytest.approx(0.8)
    assert config["learning_rate"]["config"]["initial_learning_rate"] == pytest.approx(0.05)


def test_names_stay_recognisable_and_reports_show_them_as_nested() -> None:
    model = models.nested_mobilenet_v2()
    flat = flatten(model).model
    names = {layer.name for layer in flat.layers}
    assert f"mobilenetv2_0.35_32{SEPARATOR}block_3_expand" in names
    # MACs and threshold-pruning names are those of the nested model: outer/inner
    assert [m.name for m in count_macs(flat)] == [m.name for m in count_macs(model)]
    assert "mobilenetv2_0.35_32/block_3_expand" in {m.name for m in count_macs(flat)}
    assert total_macs(flat) == total_macs(model)
    assert [w.name for w in pruning.prunable_weights(flat)] == [
        w.name for w in pruning.prunable_weights(model)
    ]


def test_training_given_to_a_nested_call_reaches_its_layers() -> None:
    """`block(x, training=True)` (e.g. Monte Carlo dropout): its BatchNorm uses batch
    statistics when the model is called without `training`, flattened or not; an explicit
    `training` of the whole call overrides it in both, as Keras does."""
    inputs = keras.Input((12, 12, 1))
    block = models._block("block", (12, 12, 1))
    model = keras.Model(inputs, models._head(block(inputs, training=True)))
    model = randomized(lambda: model)
    flat = flatten(model).model
    x = images(model)
    for training in (None, False, True):
        np.testing.assert_allclose(
            np.asarray(flat(x, training=training)),
            np.asarray(model(x, training=training)),
            atol=1e-5,
        )
    assert not np.allclose(np.asarray(model(x)), np.asarray(model(x, training=False)))


@pytest.mark.parametrize(
    ("build", "layer", "reason"),
    [
        (models.nested_subclassed, "custom", "subclassed model"),
        (models.nested_shared, "tower", "called 2 times"),
    ],
)
def test_unflattenable_sub_models_are_left_whole_with_the_reason(
    build: object, layer: str, reason: str
) -> None:
    model = randomized(build)
    flat = flatten(model)
    (skipped,) = flat.skipped
    assert skipped["layer"] == layer and reason in skipped["reason"]
    x = images(model)
    np.testing.assert_allclose(
        np.asarray(flat.model(x, training=False)), np.asarray(model(x, training=False)), atol=1e-5
    )
    # structured pruning reports the same reason, and still prunes what it can
    splits = synthetic_splits(model, n=32)
    outcome = structured.prune_structured(
        model, splits, output_kind(model), StructuredConfig(sparsity=0.5), score=lambda m: 0.5
    )
    doc = outcome.to_json()
    assert {"layer": layer, "reason": skipped["reason"]} in doc["skipped"]
    (warning,) = _flatten_warnings(flat)
    assert f"'{layer}' not flattened" in warning and skipped["reason"] in warning
    assert doc["rebuild_max_abs_diff"] <= 1e-5


@pytest.mark.slow
def test_structured_pruning_works_through_a_nested_backbone() -> None:
    """Channels, --drop-blocks and the activation criterion on the issue's nested
    MobileNetV2; report names are outer/inner."""
    model = randomized(models.nested_mobilenet_v2)
    original = [w.copy() for w in model.get_weights()]
    splits = synthetic_splits(model, n=16)
    config = StructuredConfig(
        sparsity=0.5, drop_blocks=3, criterion=StructuredCriterion.ACTIVATION, channel_multiple=8
    )
    outcome = structured.prune_structured(
        model, splits, output_kind(model), config, score=lambda m: 0.5
    )
    doc = json.loads(json.dumps(outcome.to_json()))
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights(), strict=True))
    assert doc["flattened"] == ["mobilenetv2_0.35_32"]
    assert doc["removed_channels"] > 0 and len(doc["dropped_blocks"]) == 3
    assert doc["rebuild_max_abs_diff"] <= 1e-4
    assert doc["macs_before"] == total_macs(model) > 2 * doc["macs_after"]
    layers = {layer["name"]: layer for layer in doc["layers"]}
    expand = layers["mobilenetv2_0.35_32/block_3_expand"]
    assert expand["channels_after"] < expand["channels_before"]
    assert all(name.startswith("mobilenetv2_0.35_32/") for d in doc["dropped_blocks"]
               for name in d["layers"])  # fmt: skip
    assert not any("nested model" in s["reason"] for s in doc["skipped"])


@pytest.mark.slow
def test_structured_finetuning_recipe_works_through_a_nested_model() -> None:
    model = randomized(models.nested_two_levels)
    splits = synthetic_splits(model, n=32)
    config = StructuredConfig(
        sparsity=0.5, drop_blocks=1, finetune_epochs=1, augment=("shift",),
        lr_schedule="cosine", distill=0.5,
    )  # fmt: skip
    outcome = structured.prune_structured(
        model, splits, output_kind(model), config, score=lambda m: 0.5
    )
    doc = outcome.to_json()
    assert doc["flattened"] == ["middle", "middle/inner"]
    assert doc["dropped_blocks"][0]["add"] == "middle/inner/add"
    assert doc["finetune"]["steps"] == 1 and doc["removed_channels"] > 0
    assert doc["rebuild_max_abs_diff"] <= 1e-5


def test_threshold_pruning_of_a_flattened_model_names_layers_as_nested() -> None:
    model = randomized(models.nested_functional)
    flat = flatten(model).model
    outcome = pruning.prune_model(
        flat, synthetic_splits(flat, n=32), output_kind(flat),
        PruneConfig(target_sparsity=0.5, include=("backbone/*",)), score=lambda m: 0.5,
    )  # fmt: skip
    names = [layer.name for layer in outcome.layers]
    assert names == ["backbone/stem/kernel", "backbone/dw/kernel", "backbone/project/kernel"]
    assert outcome.achieved_sparsity == pytest.approx(0.5, abs=0.05)


@pytest.mark.slow
def test_build_flattens_a_nested_model_once_for_every_pruning_path(tmp_path: Path) -> None:
    from tests.pipeline.prune.test_structured import build_on_random_images

    flags = ["--drop-blocks", "1", "--structured-sparsity", "0.3", "--sparsity", "0.5",
             "--finetune-epochs", "1"]  # fmt: skip
    out = build_on_random_images(tmp_path, models.nested_functional(), flags)
    report = json.loads((out / "report.json").read_text())["pruning"]
    assert report["flatten"] == {"separator": SEPARATOR, "flattened": ["backbone"], "skipped": []}
    s = report["structured"]
    assert [d["add"] for d in s["dropped_blocks"]] == ["backbone/add"]
    assert s["removed_channels"] > 0 and s["macs_after"] < s["macs_before"]
    assert {layer["name"] for layer in report["layers"]} >= {"backbone/stem/kernel", "head/kernel"}
