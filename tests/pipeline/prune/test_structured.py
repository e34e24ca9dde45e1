"""Structured (channel) pruning: the rebuilt model equals the masked original, MACs are
counted right, the output layer and the minimum width hold, unhandled layers are left
whole, and bad flags exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pytest

from converters.inspection import inspect_tflite
from pipeline.cli import main
from pipeline.config import PruneScope, StructuredConfig, StructuredCriterion
from pipeline.data.preprocessing import Preprocessing
from pipeline.data.splits import Splits
from pipeline.errors import ModelError
from pipeline.models import output_kind
from pipeline.prune import structured
from pipeline.prune.macs import count_macs, total_macs
from tests import models


def mobilenet_v2() -> keras.Model:
    """MobileNetV2-0.35 at 32x32: residual Adds, depthwise convs, ZeroPadding, ReLU6."""
    return keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(32, 32, 3), weights=None, classes=2
    )


# Sequential and functional models over every kind of channel handling.
KINDS = {
    "mlp": models.mlp,  # Sequential Dense chain
    "conv2d": models.conv2d,  # Sequential Conv2D, global pooling into Dense
    "conv1d": models.conv1d,  # functional Conv1D
    "residual": models.residual,  # BatchNorm, depthwise, Add with the stem, Concatenate
    "structured_sequential": models.structured_sequential,  # Conv-BN-act, Flatten -> Dense
    "structured_functional": models.structured_functional,  # Add, Concatenate -> Conv
    "structured_conv1d": models.structured_conv1d,  # Conv1D, BN, Conv1DTranspose
    "structured_unhandled": models.structured_unhandled,  # depth_multiplier 2, Reshape
    "structured_squeeze_excite": models.structured_squeeze_excite,  # broadcast Multiply
    "mobilenet_v2": mobilenet_v2,
}
CONFIGS = {
    "global-l1": StructuredConfig(sparsity=0.5, min_channels=2),
    "layer-l2": StructuredConfig(
        sparsity=0.4, scope=PruneScope.LAYER, criterion=StructuredCriterion.L2, min_channels=2
    ),
    "threshold": StructuredConfig(threshold=0.9, min_channels=1),
    "activation": StructuredConfig(
        sparsity=0.5, criterion=StructuredCriterion.ACTIVATION, min_channels=2
    ),
}


def randomized(kind: str, seed: int = 0) -> keras.Model:
    """The model with random biases and BatchNorm statistics, so that neither is a no-op
    (freshly initialised, both would hide a wrongly sliced bias, beta, mean or variance)."""
    keras.utils.set_random_seed(seed)  # kernels too: the same model whatever ran before
    model = KINDS[kind]()
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.name in ("bias", "beta", "moving_mean"):
            w.assign(rng.normal(0.0, 0.3, shape).astype("float32"))
        elif w.name in ("gamma", "moving_variance"):
            w.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
    return model


def inputs_for(model: keras.Model, n: int = 8, seed: int = 1) -> np.ndarray:
    shape = tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def widths(model: keras.Model) -> dict[str, int]:
    """Output channels of every MAC-counted layer."""
    return {m.name: m.out_channels for m in count_macs(model)}


# --------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.slow
def test_rebuilt_model_equals_masked_original(kind: str, config: str) -> None:
    model = randomized(kind)
    x = inputs_for(model)
    plan = structured.select_channels(model, CONFIGS[config], inputs_for(model, 16, seed=2))
    rebuilt = structured.rebuild(model, plan)
    reference = structured.mask_removed_inputs(model, plan)

    assert plan.removed > 0
    assert rebuilt.count_params() < model.count_params()
    assert type(rebuilt) is type(model)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    # the comparison is not vacuous: removing the channels changes the original's output
    # (the activation criterion may rightly remove only channels a ReLU keeps at zero)
    if config != "activation":
        assert np.max(np.abs(predict(reference, x) - predict(model, x))) > 1e-6
    np.testing.assert_allclose(predict(rebuilt, x), predict(reference, x), rtol=0, atol=1e-5)


def test_widths_follow_the_plan_and_tied_groups_share_channels() -> None:
    model = randomized("structured_functional")
    plan = structured.select_channels(model, StructuredConfig(sparsity=0.5, min_channels=2))
    after = widths(structured.rebuild(model, plan))
    # the Add ties stem and project: one kept set, read by the depthwise conv as well
    assert after["stem"] == after["project"] == after["dw"] < 8
    stem = plan.graph.roles["stem"].output
    project = plan.graph.roles["project"].output
    assert plan.graph.find(stem.groups[0]) == plan.graph.find(project.groups[0])
    tied = [g for g in structured._groups(plan) if g["tied_by"] == ["add"]]
    assert tied and set(tied[0]["producers"]) == {"stem", "project"}
    # the Concatenate read by 'mix': left and right are pruned each on its own
    rebuilt = structured.rebuild(model, plan)
    assert rebuilt.get_layer("mix").kernel.shape[-2] == after["left"] + after["right"]
    assert after["left"] < 6 and after["right"] < 10
    # Flatten -> Dense: rows of the kept channels at each of the 4 * 4 positions
    assert rebuilt.get_layer("dense").kernel.shape[0] == 4 * 4 * after["mix"]


@pytest.mark.slow
def test_mobilenet_v2_residual_stages_are_single_groups() -> None:
    model = mobilenet_v2()
    plan = structured.select_channels(model, StructuredConfig(sparsity=0.5))
    groups = {tuple(g["producers"]): g for g in structured._groups(plan)}
    stage = groups[("block_3_project", "block_4_project", "block_5_project")]
    assert stage["tied_by"] == ["block_4_add", "block_5_add"]
    assert stage["channels_after"] < stage["channels_before"]
    assert total_macs(structured.rebuild(model, plan)) < 0.5 * total_macs(model)


# --------------------------------------------------------------------------- MACs


def test_mac_count_matches_hand_computed_numbers() -> None:
    image = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, name="conv"),  # 6x6 out
            keras.layers.BatchNormalization(),
            keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw"),  # 3x3
            keras.layers.SeparableConv2D(6, 1, name="sep"),
            keras.layers.Conv2D(8, 3, padding="same", groups=2, name="grouped"),
            keras.layers.Flatten(),
            keras.layers.Dense(5, name="dense"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    assert {m.name: m.macs for m in count_macs(image)} == {
        "conv": 6 * 6 * 3 * 3 * 3 * 4,  # 3888
        "dw": 3 * 3 * 3 * 3 * 4,  # 324
        "sep": 3 * 3 * 1 * 4 + 3 * 3 * 4 * 6,  # 36 + 216
        "grouped": 3 * 3 * 3 * 3 * (6 // 2) * 8,  # 1944
        "dense": 72 * 5,
        "head": 5,
    }
    assert total_macs(image) == 3888 + 324 + 252 + 1944 + 360 + 5

    sequence = keras.Sequential(
        [
            keras.Input((10, 2)),
            keras.layers.Conv1D(4, 3, name="conv1d"),  # 8 positions
            keras.layers.Conv1DTranspose(3, 2, strides=2, name="up"),  # 8 in, 16 out
            keras.layers.Dense(2, name="per_step"),  # on each of 16 steps
        ]
    )
    assert total_macs(sequence) == 8 * 3 * 2 * 4 + 8 * 2 * 4 * 3 + 16 * 3 * 2


def test_mac_count_after_pruning_is_hand_computed() -> None:
    model = randomized("mlp")  # 30 -> 16 -> 1
    config = StructuredConfig(sparsity=0.5, scope=PruneScope.LAYER)
    rebuilt = structured.rebuild(model, structured.select_channels(model, config))
    assert total_macs(model) == 30 * 16 + 16 * 1
    assert total_macs(rebuilt) == 30 * 8 + 8 * 1


# --------------------------------------------------------------------------- output, width


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.slow
def test_output_layer_never_shrinks(kind: str) -> None:
    model = randomized(kind)
    config = StructuredConfig(sparsity=0.9, min_channels=1)
    plan = structured.select_channels(model, config)
    rebuilt = structured.rebuild(model, plan)
    last = model.layers[-1].name
    assert rebuilt.outputs[0].shape == model.outputs[0].shape
    assert widths(rebuilt)[last] == widths(model)[last]
    assert last in {s["layer"] for s in structured._skipped(plan)}
    assert plan.removed > 0  # the rest did shrink


def test_producers_joined_at_the_output_keep_every_channel() -> None:
    inputs = keras.Input((6,))
    a = keras.layers.Dense(4, name="a")(keras.layers.Dense(12, name="hidden")(inputs))
    b = keras.layers.Dense(4, name="b")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([a, b]))
    plan = structured.select_channels(model, StructuredConfig(sparsity=0.9, min_channels=1))
    after = widths(structured.rebuild(model, plan))
    assert after["a"] == after["b"] == 4
    assert after["hidden"] == 1


@pytest.mark.parametrize("scope", list(PruneScope))
@pytest.mark.parametrize("min_channels", [1, 3, 6])
def test_minimum_width_is_respected(scope: PruneScope, min_channels: int) -> None:
    model = randomized("structured_functional")
    plan = structured.select_channels(
        model, StructuredConfig(sparsity=0.95, scope=scope, min_channels=min_channels)
    )
    sizes = {gid: plan.graph.size(gid) for gid in plan.scores}
    kept = {gid: len(k) for gid, k in plan.kept.items()}
    for gid, size in sizes.items():
        assert kept[gid] == min(size, min_channels)  # 0.95 drives every group to its floor


@pytest.mark.parametrize("multiple", [4, 8])
def test_channel_multiple_aligns_every_shrunk_width(multiple: int) -> None:
    model = mobilenet_v2()
    exact = structured.select_channels(model, StructuredConfig(sparsity=0.6))
    plan = structured.select_channels(
        model, StructuredConfig(sparsity=0.6, channel_multiple=multiple)
    )
    shrunk = 0
    for gid, size in ((g, plan.graph.size(g)) for g in plan.scores):
        width = len(plan.kept[gid])
        assert width == size or width % multiple == 0
        assert abs(width - len(exact.kept[gid])) <= multiple  # the nearest multiple, or whole
        shrunk += width < size
        strongest = np.argsort(plan.scores[gid], kind="stable")[size - width :]
        assert set(plan.kept[gid].tolist()) == set(strongest.tolist())
    assert shrunk >= 10
    assert any(len(exact.kept[g]) % multiple for g in exact.scores)  # not aligned by chance


def test_aligned_width() -> None:
    assert structured._aligned(9, 48, 4, 8) == 8
    assert structured._aligned(13, 48, 4, 8) == 16
    assert structured._aligned(2, 48, 4, 8) == 8  # at least one multiple
    assert structured._aligned(5, 8, 4, 16) == 8  # a group no wider than M stays whole
    assert structured._aligned(10, 48, 20, 8) == 24  # the floor, rounded up
    assert structured._aligned(48, 48, 4, 8) == 48


def test_threshold_removes_filters_below_t_times_the_mean_norm() -> None:
    model = models.mlp()
    hidden = model.get_layer("hidden")
    norms = np.arange(1, 17, dtype="float32")  # mean 8.5
    kernel = np.zeros((30, 16), "float32")
    kernel[0] = norms  # l1 norm of filter c is c + 1
    hidden.kernel.assign(kernel)
    plan = structured.select_channels(model, StructuredConfig(threshold=0.5, min_channels=1))
    (gid,) = plan.scores
    np.testing.assert_array_equal(plan.kept[gid], np.arange(4, 16))  # norms >= 4.25 stay
    plan = structured.select_channels(model, StructuredConfig(threshold=0.5, min_channels=14))
    np.testing.assert_array_equal(plan.kept[gid], np.arange(2, 16))  # floor keeps the best


def test_global_scope_compares_layers_by_normalised_norms() -> None:
    model = randomized("structured_sequential")
    conv_a = model.get_layer("conv_a")
    conv_a.kernel.assign(conv_a.kernel * 1000.0)  # raw norms 1000x the other layers'
    plan = structured.select_channels(model, StructuredConfig(sparsity=0.5, min_channels=1))
    after = widths(structured.rebuild(model, plan))
    assert after["conv_a"] < 8  # large raw norms do not protect a layer
    assert after["conv_b"] > 1 and after["dense"] > 1


def test_batchnorm_scale_is_folded_into_the_filter_norm() -> None:
    model = randomized("structured_sequential")
    gamma = np.ones(8, "float32")
    gamma[[1, 5]] = 0.0  # these two channels output a constant: pruned first
    model.get_layer("bn_a").gamma.assign(gamma)
    config = StructuredConfig(sparsity=0.25, scope=PruneScope.LAYER, min_channels=1)
    plan = structured.select_channels(model, config)
    group = plan.graph.find(plan.graph.roles["conv_a"].output.groups[0])
    assert set(range(8)) - set(plan.kept[group].tolist()) == {1, 5}


def _dead_channel_model() -> keras.Model:
    """conv 'a' (4 filters) -> ReLU -> conv 'b'; filter 0 of 'a' has the largest weights but
    a bias that keeps it below zero, so ReLU silences it on every input."""
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 1, activation="relu", name="a")(inputs)
    x = keras.layers.Conv2D(3, 1, name="b")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    kernel = np.full((1, 1, 2, 4), 0.5, np.float32)
    kernel[..., 0] = 3.0
    model.get_layer("a").kernel.assign(kernel)
    model.get_layer("a").bias.assign(np.array([-1000.0, 0.0, 0.0, 0.0], np.float32))
    return model


def test_activation_criterion_removes_a_channel_that_is_never_read() -> None:
    model = _dead_channel_model()
    x = np.random.default_rng(0).uniform(0, 1, (16, 6, 6, 2)).astype(np.float32)
    one = {"sparsity": 0.25, "min_channels": 1}
    by_activation = structured.select_channels(
        model, StructuredConfig(criterion=StructuredCriterion.ACTIVATION, **one), x
    )
    by_norm = structured.select_channels(model, StructuredConfig(**one))
    (gid,) = by_activation.kept
    assert 0 not in by_activation.kept[gid]  # silent: nothing is lost without it
    assert 0 in by_norm.kept[gid]  # the largest filter
    scores = structured.activation_scores(model, by_activation.graph, x)[gid]
    assert scores[0] == 0.0 and np.all(scores[1:] > 0)
    np.testing.assert_allclose(
        predict(structured.rebuild(model, by_activation), x), predict(model, x), atol=1e-5
    )


def test_activation_criterion_needs_inputs() -> None:
    config = StructuredConfig(sparsity=0.5, criterion=StructuredCriterion.ACTIVATION)
    with pytest.raises(ValueError, match="needs input samples"):
        structured.select_channels(_dead_channel_model(), config)


def test_unhandled_layers_are_left_whole_and_listed() -> None:
    model = randomized("structured_unhandled")
    plan = structured.select_channels(model, StructuredConfig(sparsity=0.5, min_channels=1))
    reasons = {s["layer"]: s["reason"] for s in structured._skipped(plan)}
    assert "depth_multiplier 2" in reasons["dw2"]
    assert "Reshape" in reasons["reshape"]
    assert "read by 'dw2'" in reasons["c1"] and "read by 'reshape'" in reasons["c2"]
    after = widths(structured.rebuild(model, plan))
    assert after["c1"] == after["c2"] == 8 and after["dw2"] == 16
    assert after["seq"] == 5


def test_squeeze_excite_ties_the_scale_to_the_features() -> None:
    model = randomized("structured_squeeze_excite")
    plan = structured.select_channels(model, StructuredConfig(sparsity=0.5, min_channels=2))
    assert "scale" not in {s["layer"] for s in structured._skipped(plan)}
    after = widths(structured.rebuild(model, plan))
    assert after["features"] == after["excite"] < 12
    assert after["squeeze"] < 6


def test_subclassed_model_is_a_model_error() -> None:
    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ModelError, match="functional"):
        structured.select_channels(net, StructuredConfig(sparsity=0.5))


# --------------------------------------------------------------------------- the stage


def synthetic_splits(model: keras.Model, n: int = 64, seed: int = 0) -> Splits:
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    x = rng.normal(size=(3 * n, *shape)).astype("float32")
    score = x.reshape(len(x), -1) @ rng.normal(size=int(np.prod(shape)))
    y = (score > np.median(score)).astype(np.int64)
    return Splits(
        x[:n], y[:n], x[n : 2 * n], y[n : 2 * n], x[2 * n :], y[2 * n :],
        source="synthetic", preprocessing=Preprocessing.identity(),
    )  # fmt: skip


@pytest.mark.slow
def test_prune_structured_finetunes_the_rebuilt_model_and_reports() -> None:
    model = randomized("structured_functional")
    original = [w.copy() for w in model.get_weights()]
    splits = synthetic_splits(model)
    config = StructuredConfig(sparsity=0.5, finetune_epochs=2)
    outcome = structured.prune_structured(
        model, splits, output_kind(model), config, score=lambda m: 0.5
    )
    doc = json.loads(json.dumps(outcome.to_json()))
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights(), strict=True))
    assert doc["rebuild_max_abs_diff"] <= 1e-5
    assert doc["macs_after"] < doc["macs_before"] == total_macs(model)
    assert doc["params_after"] == outcome.model.count_params() < doc["params_before"]
    assert doc["finetune"]["steps"] == 2 * 2  # 64 samples, batch 32
    names = {layer["name"]: layer for layer in doc["layers"]}
    assert names["stem"]["channels_before"] == 8 > names["stem"]["channels_after"]
    assert names["head"]["channels_after"] == 1
    assert {"layer", "reason"} <= set(doc["skipped"][0])
    plan = structured.select_channels(model, config)
    before_tuning = structured.rebuild(model, plan)
    x = inputs_for(model)
    assert np.max(np.abs(predict(outcome.model, x) - predict(before_tuning, x))) > 1e-6


# --------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--structured-sparsity", "1.0"], "--structured-sparsity must be in [0, 1)"),
        (["--structured-sparsity", "-0.1"], "--structured-sparsity must be in [0, 1)"),
        (
            ["--structured-sparsity", "0.5", "--structured-threshold", "0.3"],
            "at most one of",
        ),
        (["--structured-threshold", "-1"], "--structured-threshold must be"),
        (["--structured-sparsity", "0.5", "--min-channels", "0"], "--min-channels"),
        (["--structured-criterion", "l3"], "invalid choice"),
    ],
)
def test_bad_structured_flags_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--out", str(tmp_path / "out"), "--no-bench", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def build_on_random_images(tmp_path: Path, model: keras.Model, flags: list[str]) -> Path:
    """`bedside-lite build` of `model` on 120 random images labelled by their mean; the
    output directory (the build must succeed)."""
    model.save(tmp_path / "model.keras")
    x = np.random.default_rng(0).uniform(0, 1, (120, *model.inputs[0].shape[1:]))
    x = x.astype("float32")
    np.savez(tmp_path / "data.npz", x=x, y=(x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64))
    out = tmp_path / "build"
    code = main(
        ["build", "--model", str(tmp_path / "model.keras"), "--data", str(tmp_path / "data.npz"),
         "--out", str(out), "--no-bench", "--calibration-samples", "32", *flags]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.mark.slow
def test_build_converts_the_rebuilt_model(tmp_path: Path) -> None:
    """Structured, then threshold pruning on the smaller model, then int8 of that model;
    the float32 variant stays the original."""
    flags = ["--structured-sparsity", "0.5", "--sparsity", "0.5", "--finetune-epochs", "1"]
    out = build_on_random_images(tmp_path, models.structured_sequential(), flags)
    report = json.loads((out / "report.json").read_text())
    s = report["pruning"]["structured"]
    assert s["params_after"] < s["params_before"] == report["model"]["parameters"]
    assert s["macs_after"] < s["macs_before"]

    def weights(name: str) -> int:
        return sum(t["params"] for t in inspect_tflite(out / name).weight_sparsity())

    assert weights("model_int8.tflite") == weights("model_pruned_float32.tflite")
    assert weights("model_pruned_float32.tflite") < 0.6 * weights("model_float32.tflite")
    assert report["pruning"]["achieved_sparsity"] == pytest.approx(0.5, abs=0.05)
    assert inspect_tflite(out / "model_int8.tflite").full_integer


# --------------------------------------------------------------------------- residual branches


MOBILENET_RESIDUAL_ADDS = {f"block_{i}_add" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)}


def test_residual_branches_are_found_whole() -> None:
    found = {b.add: b for b in structured.residual_branches(mobilenet_v2())}
    assert set(found) == MOBILENET_RESIDUAL_ADDS
    block = found["block_4_add"]
    assert block.layers[0] == "block_4_expand" and block.layers[-1] == "block_4_project_BN"
    assert "block_4_depthwise" in block.layers
    (branch,) = structured.residual_branches(models.structured_functional())
    assert (branch.add, branch.layers[-1]) == ("add", "project_bn")
    (branch,) = structured.residual_branches(models.residual())
    assert branch.layers == ("dw", "dw_bn", branch.layers[2], "pw")


def _add_of(left: keras.KerasTensor, right: keras.KerasTensor) -> keras.KerasTensor:
    return keras.layers.Add(name="add")([left, right])


def test_branches_that_cannot_be_removed_whole_are_not_offered() -> None:
    inputs = keras.Input((8, 8, 4))
    # the branch's middle tensor is also read outside it
    mid = keras.layers.Conv2D(4, 1, name="a")(inputs)
    end = keras.layers.BatchNormalization(name="a_bn")(mid)
    side = keras.layers.Conv2D(4, 1, name="side")(mid)
    x = keras.layers.Concatenate()([_add_of(inputs, end), side])
    assert structured.residual_branches(keras.Model(inputs, x)) == []
    # two computed branches, neither is the other's skip
    left = keras.layers.Conv2D(4, 1)(inputs)
    right = keras.layers.Conv2D(4, 1)(inputs)
    assert structured.residual_branches(keras.Model(inputs, _add_of(left, right))) == []
    # the branch ends in an activation: zeroing its last layer would not zero it
    act = keras.layers.Activation("sigmoid")(keras.layers.Conv2D(4, 1)(inputs))
    assert structured.residual_branches(keras.Model(inputs, _add_of(inputs, act))) == []


@pytest.mark.parametrize("kind", ["mobilenet_v2", "residual", "structured_functional"])
@pytest.mark.slow
def test_dropped_branches_equal_zeroed_branches(kind: str) -> None:
    model = randomized(kind)
    branches = structured.residual_branches(model)[-3:]  # nearest the head: they show
    dropped = structured.drop_branches(model, branches)
    x = inputs_for(model)

    def features(m: keras.Model) -> np.ndarray:  # what the head reads (a random
        # MobileNetV2's softmax is nearly constant)
        head = m.get_layer(model.layers[-1].name)
        return predict(keras.Model(m.inputs[0], head.input), x)

    reference = features(structured.zero_branches(model, branches))
    assert np.max(np.abs(features(dropped) - reference)) <= 1e-5
    assert np.max(np.abs(features(model) - reference)) > 1e-3  # the branches mattered
    gone = {name for b in branches for name in b.layers}
    assert not gone & {layer.name for layer in dropped.layers}
    assert total_macs(dropped) < total_macs(model)
    assert len(dropped.layers) == len(model.layers) - len(gone) - len(branches)


def test_branch_scores_rank_the_weakest_branch_first() -> None:
    model = randomized("mobilenet_v2")
    branches = structured.residual_branches(model)
    target = next(b for b in branches if b.add == "block_8_add")
    bn = model.get_layer(target.layers[-1])
    bn.gamma.assign(bn.gamma.numpy() * 1e-3)
    bn.beta.assign(bn.beta.numpy() * 1e-3)
    scores = structured.branch_scores(model, branches, inputs_for(model))
    assert branches[int(np.argmin(scores))].add == "block_8_add"


@pytest.mark.slow
def test_prune_structured_drops_blocks_then_channels() -> None:
    model = randomized("mobilenet_v2")
    splits = synthetic_splits(model, n=32)
    config = StructuredConfig(sparsity=0.5, drop_blocks=4, min_channels=2)
    outcome = structured.prune_structured(
        model, splits, output_kind(model), config, score=lambda m: 0.5
    )
    doc = json.loads(json.dumps(outcome.to_json()))
    assert doc["rebuild_max_abs_diff"] <= 1e-5
    assert doc["method"] == "residual_branches+channel_norm"
    dropped = doc["dropped_blocks"]
    scores = structured.branch_scores(
        model, structured.residual_branches(model), splits.model_inputs("train")
    )
    assert sorted(d["score"] for d in dropped) == pytest.approx(sorted(scores)[:4])
    layers = {layer["name"]: layer for layer in doc["layers"]}
    for block in dropped:
        for name in block["layers"]:
            if name in layers:
                assert layers[name]["channels_after"] == 0 == layers[name]["macs_after"]
    assert doc["macs_after"] == total_macs(outcome.model) < doc["macs_before"]
    assert doc["removed_channels"] > 0


def test_drop_blocks_only_leaves_channels_alone() -> None:
    model = randomized("structured_functional")
    splits = synthetic_splits(model, n=32)
    outcome = structured.prune_structured(
        model, splits, output_kind(model), StructuredConfig(drop_blocks=1), score=lambda m: 0.5
    )
    doc = outcome.to_json()
    assert doc["method"] == "residual_branches" and doc["removed_channels"] == 0
    assert [d["add"] for d in doc["dropped_blocks"]] == ["add"]
    assert widths(outcome.model)["mix"] == widths(model)["mix"]
    x = inputs_for(model)
    zeroed = structured.zero_branches(model, structured.residual_branches(model))
    assert np.max(np.abs(predict(outcome.model, x) - predict(zeroed, x))) <= 1e-5


def test_more_blocks_than_the_model_has_is_a_model_error() -> None:
    model = models.structured_functional()
    with pytest.raises(ModelError, match="1 can be removed.*--drop-blocks 1 or fewer"):
        structured.prune_structured(
            model,
            synthetic_splits(model, n=8),
            output_kind(model),
            StructuredConfig(drop_blocks=2),
            score=lambda m: 0.5,
        )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--drop-blocks", "-1"], "--drop-blocks must be >= 0"),
        (["--drop-blocks", "2"], "0 can be removed"),  # the default MLP has no residual
    ],
)
@pytest.mark.slow
def test_bad_drop_blocks_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--out", str(tmp_path / "out"), "--no-bench", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "can be removed" in message:
        assert "Leave out --drop-blocks" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_build_drops_a_branch_and_prunes_by_activation(tmp_path: Path) -> None:
    flags = ["--drop-blocks", "1", "--structured-sparsity", "0.3", "--structured-criterion",
             "activation", "--sparsity", "0", "--finetune-epochs", "1"]  # fmt: skip
    out = build_on_random_images(tmp_path, models.structured_functional(), flags)
    s = json.loads((out / "report.json").read_text())["pruning"]["structured"]
    assert [d["add"] for d in s["dropped_blocks"]] == ["add"]
    assert s["criterion"] == "activation" and s["removed_channels"] > 0
    assert s["rebuild_max_abs_diff"] <= 1e-5
    layers = {layer["name"]: layer for layer in s["layers"]}
    assert layers["project"]["channels_after"] == 0  # went with its branch
    assert s["macs_after"] < s["macs_before"]
    assert inspect_tflite(out / "model_int8.tflite").full_integer


def test_a_structured_loss_beyond_the_pruning_budget_is_warned() -> None:
    from pipeline.config import PruneConfig
    from pipeline.release.warnings import structured_warnings as _structured_warnings

    def report(original: float, pruned: float, finetuned: float | None) -> Any:
        # the fields of a StructuredOutcome the warning reads
        auroc = {"original": original, "pruned": pruned, "finetuned": finetuned}
        return SimpleNamespace(auto=None, val_auroc=auroc)

    budget = PruneConfig(max_prune_drop=0.01)
    assert _structured_warnings(None, budget) == []
    assert _structured_warnings(report(0.90, 0.60, 0.895), budget) == []  # fine-tuning recovered
    (warning,) = _structured_warnings(report(0.90, 0.60, 0.85), budget)
    assert "lost 0.0500 validation AUROC (0.9000 -> 0.8500)" in warning
    (warning,) = _structured_warnings(report(0.90, 0.80, None), budget)  # no fine-tuning
    assert "lost 0.1000" in warning
