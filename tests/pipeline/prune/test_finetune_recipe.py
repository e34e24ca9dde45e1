"""The fine-tuning recipe of structured pruning: image augmentation, cosine learning rate and
distillation from the unpruned model (pipeline.prune.finetune)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from pipeline import prune as pruning
from pipeline.cli import main
from pipeline.config import LrSchedule, StructuredConfig
from pipeline.errors import ConfigError
from pipeline.models import OutputKind, output_kind
from pipeline.prune import structured
from tests import models
from tests.pipeline.prune.test_structured import build_on_random_images, synthetic_splits


def _teacher(units: int, activation: str | None) -> keras.Model:
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(units, activation=activation)])


@pytest.mark.parametrize(
    ("units", "activation", "kind"),
    [
        (1, "sigmoid", OutputKind.SIGMOID),
        (1, None, OutputKind.LOGITS),
        (3, "softmax", OutputKind.SOFTMAX),
        (3, None, OutputKind.LOGITS),
    ],
)
def test_distillation_targets_mix_labels_with_teacher_probabilities(
    units: int, activation: str | None, kind: OutputKind
) -> None:
    teacher = _teacher(units, activation)
    x = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    labels = np.array([0, 1, 2, 1, 0, 2]) % max(units, 2)
    y = labels.astype("float32") if units == 1 else np.eye(units, dtype="float32")[labels]
    out = teacher.predict(x, verbose=0).astype(np.float64)
    if kind is OutputKind.LOGITS and units == 1:
        out = 1 / (1 + np.exp(-out))
    elif kind is OutputKind.LOGITS:
        out = np.exp(out) / np.exp(out).sum(axis=1, keepdims=True)
    expected = 0.75 * y + 0.25 * (out[:, 0] if units == 1 else out)
    got = keras.ops.convert_to_numpy(pruning.teacher_targets(teacher, kind, 0.25)(x, y))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_hflip_mirrors_some_images_and_leaves_the_others() -> None:
    x = np.random.default_rng(1).normal(size=(32, 6, 7, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(pruning.augmenter(["hflip"], seed=0)(x, training=True))
    kept = [np.array_equal(a, b) for a, b in zip(out, x, strict=True)]
    mirrored = [np.allclose(a, b[:, ::-1]) for a, b in zip(out, x, strict=True)]
    assert all(k or m for k, m in zip(kept, mirrored, strict=True))
    assert any(kept) and any(mirrored)


def test_shift_translates_images_within_their_shape() -> None:
    x = np.random.default_rng(2).normal(size=(16, 20, 20, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(pruning.augmenter(["shift"], seed=0)(x, training=True))
    assert out.shape == x.shape
    assert sum(not np.allclose(a, b) for a, b in zip(out, x, strict=True)) >= 8


@pytest.mark.parametrize("schedule", list(LrSchedule))
def test_cosine_schedule_ends_at_zero_and_constant_stays(schedule: LrSchedule) -> None:
    model = models.mlp(5)
    splits = synthetic_splits(model)
    recipe = pruning.FinetuneRecipe(epochs=2, lr_schedule=schedule)
    done = pruning.finetune(model, splits, output_kind(model), recipe)
    assert done.steps == 4  # 64 samples, batch 32
    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert rate == pytest.approx(0.0 if schedule is LrSchedule.COSINE else 1e-3, abs=1e-9)


@pytest.mark.parametrize("schedule", list(LrSchedule))
def test_a_model_bringing_its_own_schedule_is_decayed_from_its_start(
    schedule: LrSchedule,
) -> None:
    """A model compiled with a cosine over its own 1000 steps and trained 5 of them: the
    fine-tune's cosine starts at that schedule's step-0 rate and reaches 0 after the
    fine-tune's 4 steps; a constant recipe keeps the model's schedule, restarted at step 0."""
    model = models.mlp(5)
    own = keras.optimizers.schedules.CosineDecay(2e-3, 1000)
    model.compile(optimizer=keras.optimizers.Adam(own), loss="binary_crossentropy")
    splits = synthetic_splits(model)
    model.fit(splits.x_train[:5], splits.y_train[:5].astype("float32"), batch_size=1, verbose=0)
    optimizer = pruning.finetune_optimizer(model, 4 if schedule is LrSchedule.COSINE else 0)
    rates = [float(keras.ops.convert_to_numpy(optimizer.learning_rate))]
    for _ in range(4):
        optimizer.iterations.assign_add(1)
        rates.append(float(keras.ops.convert_to_numpy(optimizer.learning_rate)))
    if schedule is LrSchedule.COSINE:
        assert rates[0] == pytest.approx(2e-3) and rates[2] == pytest.approx(1e-3)
        assert rates[4] == pytest.approx(0.0, abs=1e-9)
    else:
        assert rates[0] == pytest.approx(2e-3) and rates[4] == pytest.approx(2e-3, rel=1e-4)


@pytest.mark.slow
def test_masks_hold_through_augmented_distilled_finetuning() -> None:
    model = models.structured_sequential()
    teacher = keras.models.clone_model(model)
    teacher.set_weights(model.get_weights())
    splits = synthetic_splits(model)
    weights = pruning.prunable_weights(model)
    result = pruning.compute_masks(weights, sparsity=0.5)
    pruning.apply_masks(weights, result.masks)
    before = [w.copy() for w in model.get_weights()]
    pruning.finetune(
        model, splits, output_kind(model),
        pruning.FinetuneRecipe(2, ("hflip", "shift"), LrSchedule.COSINE, distill=0.5),
        masks=pruning.HeldMasks(weights, result), teacher=teacher,
    )  # fmt: skip
    after = model.get_weights()
    zeros = sum(int(np.sum(b == 0)) for b in before)
    assert zeros > 0.4 * sum(b.size for b, _ in zip(before, after, strict=True) if b.ndim > 1)
    assert all(np.all(a[b == 0] == 0) for a, b in zip(after, before, strict=True) if b.ndim > 1)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))


def test_augmenting_a_non_image_input_is_a_config_error() -> None:
    model = models.mlp(5)
    with pytest.raises(ConfigError, match=r"needs a model input of shape \(N, H, W, C\)"):
        pruning.finetune(
            model, synthetic_splits(model), output_kind(model),
            pruning.FinetuneRecipe(epochs=1, augment=("hflip",)),
        )  # fmt: skip


@pytest.mark.slow
def test_prune_structured_reports_its_recipe_and_leaves_the_teacher_alone() -> None:
    model = models.structured_functional()
    original = [w.copy() for w in model.get_weights()]
    splits = synthetic_splits(model)
    config = StructuredConfig(
        sparsity=0.5, finetune_epochs=2, augment=("vflip",), lr_schedule="cosine", distill=0.7
    )
    outcome = structured.prune_structured(
        model, splits, output_kind(model), config, score=lambda m: 0.5
    )
    tuning = json.loads(json.dumps(outcome.to_json()))["finetune"]
    assert (tuning["augment"], tuning["lr_schedule"], tuning["distill"]) == (
        ["vflip"], "cosine", 0.7,
    )  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(original, model.get_weights(), strict=True))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--structured-distill", "1.5"], "--structured-distill must be in [0, 1]"),
        (["--structured-augment", "rotate"], "invalid choice"),
        (["--structured-lr-schedule", "step"], "invalid choice"),
    ],
)
def test_bad_recipe_flags_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--out", str(tmp_path / "out"), "--no-bench", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_build_with_the_full_recipe(tmp_path: Path) -> None:
    out = build_on_random_images(
        tmp_path, models.structured_functional(),
        ["--sparsity", "0", "--structured-sparsity", "0.5", "--structured-finetune-epochs", "1",
         "--structured-augment", "hflip", "--structured-augment", "shift",
         "--structured-lr-schedule", "cosine", "--structured-distill", "0.5"],
    )  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    tuning = report["pruning"]["structured"]["finetune"]
    assert tuning["augment"] == ["hflip", "shift"]
    assert (tuning["lr_schedule"], tuning["distill"]) == ("cosine", 0.5)
