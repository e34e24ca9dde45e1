"""Threshold pruning: the formula, both ways to pick tau, scopes, masks through fine-tuning,
the auto search, and bad input."""

from __future__ import annotations

import fnmatch

import keras
import numpy as np
import pytest

from pipeline import prune as pruning
from pipeline.config import PruneConfig, PruneSchedule, PruneScope
from pipeline.data.preprocessing import Preprocessing
from pipeline.data.splits import Splits
from pipeline.errors import ConfigError, ModelError
from pipeline.evaluate.metrics import evaluate, probabilities
from pipeline.models import OutputKind, output_kind
from tests import models

# Sequential and functional models over every prunable layer kind.
KINDS = {
    "mlp": models.mlp,  # Sequential Dense
    "conv2d": models.conv2d,  # Sequential Conv2D
    "conv1d": models.conv1d,  # functional Conv1D
    "residual": models.residual,  # functional Conv2D, depthwise, separable, BatchNorm
    "depthwise_separable": models.depthwise_separable,  # Sequential, plus Conv2DTranspose
    "conv3d": models.conv3d,  # Conv3D, LayerNormalization
}
EXPECTED_KERNELS = {
    "mlp": ["hidden/kernel", "head/kernel"],
    "conv2d": ["conv_a/kernel", "conv_b/kernel", "head/kernel"],
    "conv1d": ["conv1d_a/kernel", "conv1d_b/kernel", "head/kernel"],
    "residual": [
        "stem/kernel",
        "dw/kernel",
        "pw/kernel",
        "sep/depthwise_kernel",
        "sep/pointwise_kernel",
        "head/kernel",
    ],
    "depthwise_separable": [
        "dw/kernel",
        "sep/depthwise_kernel",
        "sep/pointwise_kernel",
        "up/kernel",
        "head/kernel",
    ],
    "conv3d": ["conv3d/kernel", "head/kernel"],
}
# fine-tuning runs are the slow part: a Sequential and a functional model per layer family
FINETUNE_KINDS = ["mlp", "conv1d", "residual", "depthwise_separable"]


def randomized(kind: str, seed: int = 0, scales: bool = False) -> keras.Model:
    """A model whose prunable kernels and biases hold distinct N(0, 1) values.

    With `scales`, kernel i is multiplied by 4**i, so that one global tau prunes layers
    very differently.
    """
    model = KINDS[kind]()
    rng = np.random.default_rng(seed)
    for i, w in enumerate(pruning.prunable_weights(model)):
        factor = 4.0**i if scales else 1.0
        w.variable.assign(rng.normal(size=w.variable.shape).astype("float32") * factor)
        if w.bias is not None:
            w.bias.assign(rng.normal(size=w.bias.shape).astype("float32"))
    return model


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    return {w.name: w.variable.numpy().copy() for w in pruning.prunable_weights(model)}


def biases(model: keras.Model) -> dict[str, np.ndarray]:
    return {
        w.bias_name: w.bias.numpy().copy()
        for w in pruning.prunable_weights(model)
        if w.bias is not None
    }


def splits_for(model: keras.Model, n: int = 48, seed: int = 0) -> Splits:
    """Synthetic data shaped for the model, labels from a fixed linear rule."""
    rng = np.random.default_rng(seed)
    shape = tuple(model.inputs[0].shape[1:])
    x = rng.normal(size=(3 * n, *shape)).astype("float32")
    score = x.reshape(len(x), -1) @ rng.normal(size=int(np.prod(shape)))
    y = (score > np.median(score)).astype(np.int64)
    return Splits(
        x[:n],
        y[:n],
        x[n : 2 * n],
        y[n : 2 * n],
        x[2 * n :],
        y[2 * n :],
        source="synthetic",
        preprocessing=Preprocessing.identity(),
    )


def no_score(_: keras.Model) -> float:
    return 0.5


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize("kind", list(KINDS))
def test_prunable_kernels_are_dense_and_conv_only(kind: str) -> None:
    names = [w.name for w in pruning.prunable_weights(KINDS[kind]())]
    assert names == EXPECTED_KERNELS[kind]  # no BatchNorm / LayerNorm gamma or beta


def test_embeddings_and_normalisation_are_never_pruned() -> None:
    model = keras.Sequential(
        [
            keras.Input(shape=(5,), dtype="int32"),
            keras.layers.Embedding(20, 4, name="embed"),
            keras.layers.LayerNormalization(name="ln"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1, activation="sigmoid", name="head"),
        ]
    )
    assert [w.name for w in pruning.prunable_weights(model)] == ["head/kernel"]


def test_nested_model_layers_are_found_and_matched() -> None:
    inner = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4, name="hidden")], name="inner"
    )
    model = keras.Sequential([keras.Input((6,)), inner, keras.layers.Dense(1, name="head")])
    names = [w.name for w in pruning.prunable_weights(model)]
    assert names == ["inner/hidden/kernel", "head/kernel"]
    for pattern in ("hidden", "inner/*"):
        selected = pruning.prunable_weights(model, include=[pattern])
        assert [w.name for w in selected] == ["inner/hidden/kernel"]
    pruning.prune(
        model, PruneConfig(target_sparsity=0.5, scope=PruneScope.LAYER, include=("inner/*",))
    )
    assert np.mean(inner.layers[0].kernel.numpy() == 0) == 0.5


def test_include_exclude_and_keep_first_last() -> None:
    model = KINDS["residual"]()
    assert {w.layer for w in pruning.prunable_weights(model, include=["s*"])} == {"stem", "sep"}
    assert {w.layer for w in pruning.prunable_weights(model, include=["s*"], exclude=["stem"])} == {
        "sep"
    }
    kept = pruning.prunable_weights(model, keep_first_last_dense=True)
    assert [w.layer for w in kept] == ["dw", "pw", "sep", "sep"]

    config = PruneConfig(threshold=0.5, exclude=("head", "stem"), keep_first_last_dense=False)
    model = randomized("residual")
    before = kernels(model)
    pruning.prune(model, config)
    after = kernels(model)
    for name in ("head/kernel", "stem/kernel"):
        np.testing.assert_array_equal(after[name], before[name])
    assert np.count_nonzero(after["pw/kernel"] == 0) > 0


# --------------------------------------------------------------------------- the formula


@pytest.mark.parametrize("prune_biases", [False, True], ids=["kernels", "biases"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_threshold_is_the_exact_formula(kind: str, prune_biases: bool) -> None:
    model = randomized(kind)
    w0, b0 = kernels(model), biases(model)
    tau = float(np.median(np.abs(np.concatenate([v.ravel() for v in w0.values()]))))

    result = pruning.prune(model, PruneConfig(threshold=tau, prune_biases=prune_biases))

    assert result.threshold == tau
    for name, w in kernels(model).items():
        np.testing.assert_array_equal(w, w0[name] * (np.abs(w0[name]) >= tau))
    b1 = biases(model)
    for name, b in b0.items():
        expected = b * (np.abs(b) >= tau) if prune_biases else b
        np.testing.assert_array_equal(b1[name], expected)
    zeroed_biases = sum(int(np.count_nonzero(b1[n] != b0[n])) for n in b0)
    assert (zeroed_biases > 0) == (prune_biases and bool(b0))


@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_scope_reaches_sparsity_within_one_weight_per_kernel(kind: str) -> None:
    model = randomized(kind)
    w0 = kernels(model)
    result = pruning.prune(model, PruneConfig(target_sparsity=0.6, scope=PruneScope.LAYER))
    assert result.threshold is None
    for name, w in kernels(model).items():
        zeros = int(np.count_nonzero(w == 0))
        assert abs(zeros - 0.6 * w.size) <= 1, name
        tau = result.thresholds[name]
        np.testing.assert_array_equal(w, w0[name] * (np.abs(w0[name]) >= tau))


@pytest.mark.parametrize("kind", list(KINDS))
def test_global_scope_reaches_sparsity_within_one_weight_overall(kind: str) -> None:
    model = randomized(kind)
    w0 = kernels(model)
    result = pruning.prune(model, PruneConfig(target_sparsity=0.6, scope=PruneScope.GLOBAL))
    after = kernels(model)
    total = sum(w.size for w in after.values())
    zeros = sum(int(np.count_nonzero(w == 0)) for w in after.values())
    assert abs(zeros - 0.6 * total) <= 1
    tau = result.threshold
    assert tau is not None and set(result.thresholds.values()) == {tau}
    for name, w in after.items():
        np.testing.assert_array_equal(w, w0[name] * (np.abs(w0[name]) >= tau))


@pytest.mark.parametrize("kind", ["mlp", "conv1d", "residual", "depthwise_separable"])
def test_global_and_layer_scopes_differ(kind: str) -> None:
    """Kernels of very different scale: one global tau spares the large ones, per-layer
    taus give every kernel the target."""
    s = 0.5
    glob = randomized(kind, scales=True)
    pruning.prune(glob, PruneConfig(target_sparsity=s, scope=PruneScope.GLOBAL))
    per_layer = randomized(kind, scales=True)
    pruning.prune(per_layer, PruneConfig(target_sparsity=s, scope=PruneScope.LAYER))

    glob_s = [float(np.mean(w == 0)) for w in kernels(glob).values()]
    layer_s = [float(np.mean(w == 0)) for w in kernels(per_layer).values()]
    assert max(glob_s) - min(glob_s) > 0.3  # the smallest-scale kernel is pruned hardest
    assert glob_s[0] > s > glob_s[-1]
    for w in kernels(per_layer).values():
        assert abs(np.count_nonzero(w == 0) - s * w.size) <= 1
    assert max(layer_s) - min(layer_s) < 0.3


def test_threshold_for_sparsity_keeps_ties_and_at_least_one_weight() -> None:
    mags = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0])
    assert pruning.threshold_for_sparsity(mags, 0.5) == 1.0  # 3 weights below tau
    assert pruning.threshold_for_sparsity(mags, 0.2) == 0.0  # ties at 0 are kept
    assert pruning.threshold_for_sparsity(mags, 0.99) == 3.0  # never prunes everything


def test_new_mask_never_revives_a_pruned_weight() -> None:
    model = randomized("mlp")
    weights = pruning.prunable_weights(model)
    first = pruning.compute_masks(weights, sparsity=0.5, scope=PruneScope.LAYER)
    pruning.apply_masks(weights, first.masks)
    # a pruned weight grows large again (as an unmasked optimizer step would make it)
    hidden = weights[0]
    w = hidden.variable.numpy().copy()
    revived = np.unravel_index(np.argmin(first.masks[hidden.name]), w.shape)
    w[revived] = 100.0
    hidden.variable.assign(w)
    second = pruning.compute_masks(
        weights, sparsity=0.5, scope=PruneScope.LAYER, previous=first.masks
    )
    assert not second.masks[hidden.name][revived]
    for name in first.masks:
        assert not np.any(second.masks[name] & ~first.masks[name])


# --------------------------------------------------------------------------- fine-tuning


def test_polynomial_schedule_is_cubic_and_ends_at_the_last_update() -> None:
    schedule = pruning.PolynomialSchedule.for_training(0.1, 0.8, total_steps=25, frequency=10)
    assert schedule.end_step == 20
    for t in (0, 5, 10, 17, 20, 24):
        expected = 0.8 + (0.1 - 0.8) * (1 - min(t, 20) / 20) ** 3
        assert schedule.sparsity_at(t) == pytest.approx(expected)
    assert [t for t in range(25) if schedule.is_update(t)] == [10, 20]
    single = pruning.PolynomialSchedule.for_training(0.0, 0.5, total_steps=4, frequency=10)
    assert single.sparsity_at(0) == 0.5  # one update only: the final sparsity at once


@pytest.mark.parametrize("schedule", list(PruneSchedule))
@pytest.mark.parametrize("kind", FINETUNE_KINDS)
@pytest.mark.slow
def test_masks_hold_through_finetuning(kind: str, schedule: PruneSchedule) -> None:
    s = 0.6
    model = randomized(kind)
    splits = splits_for(model)  # 48 samples: 2 steps per epoch
    config = PruneConfig(
        target_sparsity=s,
        scope=PruneScope.LAYER,
        prune_biases=True,
        finetune_epochs=3,
        schedule=schedule,
        initial_sparsity=0.2,
        prune_frequency=1,
    )
    weights = pruning.select_weights(model, config)
    sched = None
    start = s
    if schedule is PruneSchedule.POLYNOMIAL:
        sched = pruning.PolynomialSchedule.for_training(0.2, s, 6, 1)
        start = sched.sparsity_at(0)
    result = pruning.compute_masks(weights, sparsity=start, scope=config.scope, prune_biases=True)
    pruning.apply_masks(weights, result.masks)
    before_w, before_b = kernels(model), biases(model)

    tuned = pruning.finetune(
        model, splits, output_kind(model), pruning.FinetuneRecipe.for_threshold(config),
        masks=pruning.HeldMasks.for_config(weights, result, config, sched),
    )  # fmt: skip

    after_w, after_b = kernels(model), biases(model)
    assert tuned.steps == 6
    for name, w in after_w.items():
        zeros_before, zeros_after = before_w[name] == 0, w == 0
        assert np.all(zeros_after[zeros_before]), f"{name}: a pruned weight came back"
        assert np.mean(zeros_after) >= np.mean(zeros_before)
        assert (
            abs(np.count_nonzero(zeros_after) - s * w.size) <= 1
            or np.count_nonzero(zeros_after) > s * w.size
        )  # the schedule reached S
    for name, b in after_b.items():
        assert np.all(b[before_b[name] == 0] == 0), f"{name}: a pruned bias came back"
    # training happened: kept weights moved
    assert any(not np.array_equal(after_w[n], before_w[n]) for n in after_w)
    if schedule is PruneSchedule.POLYNOMIAL:
        targets = [u["target_sparsity"] for u in tuned.mask_updates]
        assert [u["step"] for u in tuned.mask_updates] == [1, 2, 3, 4, 5]
        assert targets == sorted(targets) and targets[-1] == pytest.approx(s)
        assert targets[0] > 0.2
    else:
        assert tuned.mask_updates == ()


@pytest.mark.slow
def test_prune_model_reports_sparsity_before_and_after_finetuning() -> None:
    model = randomized("mlp")
    splits = splits_for(model)
    config = PruneConfig(
        target_sparsity=0.7,
        finetune_epochs=2,
        schedule=PruneSchedule.POLYNOMIAL,
        initial_sparsity=0.3,
        prune_frequency=1,
    )
    report = pruning.prune_model(
        model, splits, OutputKind.SIGMOID, config, score=no_score
    ).to_json()
    assert report["achieved_sparsity_before_finetune"] == pytest.approx(0.3, abs=0.01)
    assert report["achieved_sparsity"] >= 0.7 - 1 / 496
    assert report["achieved_sparsity_after_finetune"] == report["achieved_sparsity"]
    assert report["target_sparsity"] == 0.7 and report["schedule"] == "polynomial"
    assert report["finetune"]["epochs"] == 2 and report["finetune"]["mask_updates"]
    assert set(report["validation_auroc"]) == {"original", "pruned", "finetuned"}
    for layer in report["layers"]:
        assert {"name", "kind", "params", "zeros", "sparsity", "threshold"} <= set(layer)


@pytest.mark.parametrize(
    ("build", "loss_type", "from_logits"),
    [
        (lambda: models.mlp(units=1), keras.losses.BinaryCrossentropy, False),
        (lambda: models.mlp(units=3), keras.losses.SparseCategoricalCrossentropy, False),
        (
            lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]),
            keras.losses.BinaryCrossentropy,
            True,
        ),
        (
            lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]),
            keras.losses.SparseCategoricalCrossentropy,
            True,
        ),
    ],
    ids=["sigmoid", "softmax", "logit", "logits"],
)
def test_finetune_loss_follows_the_output(build, loss_type, from_logits) -> None:
    model = build()
    loss, one_hot = pruning.finetune_loss(model, output_kind(model))
    assert isinstance(loss, loss_type) and not one_hot
    assert loss.get_config()["from_logits"] is from_logits


def test_finetune_uses_the_models_own_compile_settings() -> None:
    model = models.mlp(units=3)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="categorical_crossentropy")
    loss, one_hot = pruning.finetune_loss(model, output_kind(model))
    assert loss == "categorical_crossentropy" and one_hot
    splits = splits_for(model)
    splits = Splits(
        splits.x_train,
        splits.y_train + 1,
        splits.x_val,
        splits.y_val,
        splits.x_test,
        splits.y_test,
        "synthetic",
        Preprocessing.identity(),
    )
    report = pruning.prune_model(
        model,
        splits,
        output_kind(model),
        PruneConfig(target_sparsity=0.5, finetune_epochs=1),
        score=no_score,
    ).to_json()
    assert report["finetune"]["history"]["loss"]  # trained on one-hot labels
    assert isinstance(model.optimizer, keras.optimizers.SGD)


# --------------------------------------------------------------------------- auto


def measured_sparsity(model: keras.Model) -> float:
    w = kernels(model).values()
    return sum(int(np.count_nonzero(v == 0)) for v in w) / sum(v.size for v in w)


def test_auto_keeps_the_largest_sparsity_within_budget() -> None:
    """A score that falls with sparsity but recovers at 0.6: the largest passing wins, and
    every grid point starts from the original weights."""
    table = {0.0: 0.9, 0.25: 0.895, 0.5: 0.85, 0.6: 0.892, 0.7: 0.7, 0.8: 0.6, 0.9: 0.5}
    seen = []

    def score(model: keras.Model) -> float:
        s = round(measured_sparsity(model) * 20) / 20
        seen.append(s)
        return table[s]

    model = randomized("mlp")
    w0 = kernels(model)
    outcome = pruning.prune_model(
        model, splits_for(model), OutputKind.SIGMOID, PruneConfig(max_prune_drop=0.01), score=score
    )

    assert seen == [0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert outcome.target_sparsity == 0.6
    assert [p["within_budget"] for p in outcome.auto.curve] == [
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    assert measured_sparsity(model) == pytest.approx(0.6, abs=1 / 496)
    tau = outcome.trial.result.threshold
    for name, w in kernels(model).items():  # the chosen point, pruned from the original
        np.testing.assert_array_equal(w, w0[name] * (np.abs(w0[name]) >= tau))
    report = outcome.to_json()
    assert report["sparsity_mode"] == "auto" and report["auto"]["chosen_sparsity"] == 0.6
    assert [p["sparsity"] for p in report["auto"]["curve"]] == list(PruneConfig().auto_grid)


@pytest.mark.slow
def test_auto_restores_the_original_weights_between_grid_points() -> None:
    seen = []

    def score(model: keras.Model) -> float:
        seen.append(measured_sparsity(model))
        return seen[-1]  # only high sparsity passes a negative budget of -0.5

    model = randomized("conv1d")
    config = PruneConfig(max_prune_drop=-0.5, auto_grid=(0.8, 0.3), finetune_epochs=1)
    outcome = pruning.prune_model(model, splits_for(model), OutputKind.SIGMOID, config, score=score)
    # original, 0.8 pruned, 0.8 tuned, 0.3 pruned (not 0.8: weights were restored), 0.3 tuned
    assert seen[3] == pytest.approx(0.3, abs=0.01)
    assert outcome.target_sparsity == 0.8
    assert measured_sparsity(model) == pytest.approx(0.8, abs=0.01)  # chosen weights back


@pytest.fixture(scope="module")
def trained_mlp() -> tuple[keras.Model, Splits, list[np.ndarray]]:
    keras.utils.set_random_seed(0)
    model = models.mlp()
    splits = splits_for(model, n=160)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    model.fit(splits.x_train, splits.y_train.astype("float32"), epochs=30, batch_size=32, verbose=0)
    return model, splits, model.get_weights()


def val_auroc(splits: Splits):
    def score(model: keras.Model) -> float | None:
        out = model.predict(splits.x_val, verbose=0)
        return evaluate(probabilities(out, OutputKind.SIGMOID), splits.y_val)["auroc"]

    return score


@pytest.mark.slow
def test_auto_on_real_auroc_picks_a_sparsity_within_budget(trained_mlp) -> None:
    model, splits, weights = trained_mlp
    model.set_weights(weights)
    outcome = pruning.prune_model(
        model, splits, OutputKind.SIGMOID, PruneConfig(max_prune_drop=0.01), score=val_auroc(splits)
    )
    report = outcome.to_json()
    baseline = report["auto"]["baseline_val_auroc"]
    assert baseline > 0.9
    chosen = report["auto"]["chosen_sparsity"]
    assert chosen > 0 and report["target_sparsity"] == chosen
    point = next(p for p in report["auto"]["curve"] if p["sparsity"] == chosen)
    assert point["val_auroc"] >= baseline - 0.01
    assert all(not p["within_budget"] for p in report["auto"]["curve"] if p["sparsity"] > chosen)
    assert measured_sparsity(model) == pytest.approx(chosen, abs=1 / 496)
    assert val_auroc(splits)(model) == pytest.approx(point["val_auroc"])


@pytest.mark.parametrize("budget", [-1.0, -0.05])
def test_auto_ships_unpruned_when_the_budget_cannot_be_met(trained_mlp, budget) -> None:
    """-1 is impossible (AUROC would have to exceed 1); -0.05 asks pruning to improve a
    near-perfect model, which it does not."""
    model, splits, weights = trained_mlp
    model.set_weights(weights)
    config = PruneConfig(max_prune_drop=budget, auto_grid=(0.25, 0.5))
    outcome = pruning.prune_model(
        model, splits, OutputKind.SIGMOID, config, score=val_auroc(splits)
    )
    for got, want in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, want)
    report = outcome.to_json()
    assert report["target_sparsity"] == 0.0 and report["achieved_sparsity"] == 0.0
    assert report["auto"]["chosen_sparsity"] == 0.0
    assert "ships unpruned" in report["auto"]["reason"] and report["note"]
    assert len(report["auto"]["curve"]) == 2


def test_explicit_zero_sparsity_skips_pruning() -> None:
    model = randomized("mlp")
    w0 = kernels(model)
    report = pruning.prune_model(
        model,
        splits_for(model),
        OutputKind.SIGMOID,
        PruneConfig(target_sparsity=0.0, finetune_epochs=3),
        score=no_score,
    ).to_json()
    for name, w in kernels(model).items():
        np.testing.assert_array_equal(w, w0[name])
    assert report["finetune"] is None and report["achieved_sparsity"] == 0.0
    # with nothing to prune, sparsity 0 is not an error either
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Activation("sigmoid")])
    report = pruning.prune_model(
        plain,
        splits_for(plain),
        OutputKind.LOGITS,
        PruneConfig(target_sparsity=0.0),
        score=no_score,
    ).to_json()
    assert report["layers"] == [] and report["note"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": -0.1}, "--threshold must be"),
        ({"threshold": float("nan")}, "--threshold must be"),
        ({"target_sparsity": 1.0}, "--sparsity must be in [0, 1)"),
        ({"target_sparsity": -0.2}, "--sparsity must be in [0, 1)"),
        ({"target_sparsity": "most"}, "or 'auto'"),
        ({"target_sparsity": 0.5, "threshold": 0.1}, "not both"),
        ({"schedule": PruneSchedule.POLYNOMIAL}, "--finetune-epochs N"),
        (
            {"schedule": PruneSchedule.POLYNOMIAL, "finetune_epochs": 2, "threshold": 0.1},
            "Pass --sparsity S",
        ),
        (
            {
                "schedule": PruneSchedule.POLYNOMIAL,
                "finetune_epochs": 2,
                "target_sparsity": 0.5,
                "initial_sparsity": 0.7,
            },
            "only raises",
        ),
        ({"prune_frequency": 0}, "--prune-frequency"),
        ({"max_prune_drop": 2.0}, "--max-prune-drop"),
        ({"auto_grid": (0.5, 1.0)}, "grid"),
    ],
)
def test_bad_config_is_a_config_error(kwargs, message) -> None:
    with pytest.raises(ConfigError) as err:
        PruneConfig(**kwargs)
    assert message in str(err.value)


def test_bad_layer_selection() -> None:
    model = KINDS["mlp"]()
    with pytest.raises(ConfigError, match="--prune-include 'conv\\*' matches no prunable"):
        pruning.prunable_weights(model, include=["conv*"])
    with pytest.raises(ConfigError, match="hidden, head"):
        pruning.prunable_weights(model, exclude=["bn"])
    with pytest.raises(ConfigError, match="leaves nothing to prune"):
        pruning.prunable_weights(model, keep_first_last_dense=True)
    no_prunable = keras.Sequential(
        [keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Activation("sigmoid")],
        name="plain",
    )
    with pytest.raises(ModelError, match="'plain' has no prunable layer"):
        pruning.prunable_weights(no_prunable)
    assert fnmatch.fnmatchcase("hidden", "hid*")  # patterns are globs, not regexes


def test_prune_needs_a_number_in_auto_mode() -> None:
    with pytest.raises(ConfigError, match="prune_model"):
        pruning.prune(KINDS["mlp"](), PruneConfig())
