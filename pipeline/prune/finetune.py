"""Fine-tuning of a pruned model: one `FinetuneRecipe`, the loss, the optimizer and its
learning-rate schedule, image augmentation, distillation targets, and `finetune`.

Threshold pruning fine-tunes with its masks held (`pipeline.prune.schedule`); structured
pruning fine-tunes the rebuilt, smaller model with no masks at all. Both build their recipe
from their config (`FinetuneRecipe.for_threshold`, `FinetuneRecipe.for_structured`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import (
    FINETUNE_AUGMENTATIONS,
    Augmentation,
    LrSchedule,
    PruneConfig,
    StructuredConfig,
)
from pipeline.errors import ConfigError
from pipeline.prune.magnitude import PruningResult
from pipeline.prune.schedule import HeldMasks, mask_keeper

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind

FINETUNE_BATCH_SIZE = 32


@dataclass(frozen=True)
class FinetuneRecipe:
    """How a pruned model is fine-tuned on the train split.

    Attributes:
        epochs: passes over the train split (0: no fine-tuning).
        augment: random image transforms of FINETUNE_AUGMENTATIONS, applied per batch.
        lr_schedule: the optimizer's rate throughout, or decayed to 0 along a cosine.
        distill: weight of a teacher's probabilities in the targets (0: labels only).
        batch_size: training batch size.
    """

    epochs: int
    augment: tuple[str, ...] = ()
    lr_schedule: LrSchedule = LrSchedule.CONSTANT
    distill: float = 0.0
    batch_size: int = FINETUNE_BATCH_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        object.__setattr__(self, "lr_schedule", LrSchedule(self.lr_schedule))
        unknown = [a for a in self.augment if a not in FINETUNE_AUGMENTATIONS]
        if unknown or not 0.0 <= self.distill <= 1.0 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError(
                f"FinetuneRecipe expects epochs >= 0, augment of {FINETUNE_AUGMENTATIONS}, "
                f"distill in [0, 1] and batch_size >= 1; received {self}."
            )

    @classmethod
    def for_threshold(cls, config: PruneConfig) -> FinetuneRecipe:
        """Threshold pruning's recipe: `config.finetune_epochs` of plain fine-tuning."""
        return cls(config.finetune_epochs)

    @classmethod
    def for_structured(cls, config: StructuredConfig, images: bool = True) -> FinetuneRecipe:
        """Structured pruning's recipe: epochs, augmentation, schedule and distillation
        (`StructuredConfig.recipe`: each set, else the mode's default)."""
        recipe = config.recipe(images)
        return cls(recipe.epochs, recipe.augment, recipe.lr_schedule, recipe.distill)

    def steps_per_epoch(self, samples: int) -> int:
        """Optimizer steps of one epoch over `samples` training samples."""
        return max(1, math.ceil(samples / self.batch_size))

    def total_steps(self, samples: int) -> int:
        """Optimizer steps of the whole fine-tuning over `samples` training samples."""
        return self.epochs * self.steps_per_epoch(samples)


def finetune_loss(
    model: keras.Model, kind: OutputKind, soft_targets: bool = False
) -> tuple[Any, bool]:
    """The fine-tuning loss and whether it wants one-hot labels.

    A model compiled with its own loss (e.g. loaded with compile info) keeps it; otherwise a
    single sigmoid unit gets binary cross-entropy, a softmax sparse categorical
    cross-entropy, and raw logits the same with from_logits=True. With `soft_targets`
    (distillation) several units get categorical cross-entropy on one-hot-shaped targets,
    and the model's own loss is not used.
    """
    import keras

    from pipeline.models import OutputKind

    logits = kind is OutputKind.LOGITS
    if soft_targets:
        if int(model.outputs[0].shape[-1]) == 1:
            return keras.losses.BinaryCrossentropy(from_logits=logits), False
        return keras.losses.CategoricalCrossentropy(from_logits=logits), True
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        loss = model.loss
        name = (
            loss
            if isinstance(loss, str)
            else (getattr(loss, "name", None) or getattr(loss, "__name__", type(loss).__name__))
        )
        name = str(name).lower()
        return loss, "categorical" in name and "sparse" not in name
    if int(model.outputs[0].shape[-1]) == 1:
        return keras.losses.BinaryCrossentropy(from_logits=logits), False
    return keras.losses.SparseCategoricalCrossentropy(from_logits=logits), False


def finetune_optimizer(model: keras.Model, cosine_steps: int = 0) -> Any:
    """A fresh copy of the model's own optimizer, else Adam(1e-3). With `cosine_steps` the
    learning rate decays along a cosine from its starting value to 0 over that many steps;
    a schedule the model brings (e.g. the cosine of its own training) starts it at its
    rate at step 0. Without, the model's rate or schedule is kept, restarted at step 0."""
    import keras

    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
    optimizer = optimizer or keras.optimizers.Adam(1e-3)
    config = optimizer.get_config()
    if cosine_steps:
        start = _starting_rate(config.get("learning_rate"))
        config["learning_rate"] = keras.optimizers.schedules.CosineDecay(start, cosine_steps)
    return type(optimizer).from_config(config)


def _starting_rate(rate: Any) -> float:
    """An optimizer config's learning rate at step 0: the number, or its schedule's value."""
    import keras

    if isinstance(rate, (int, float)):
        return float(rate)
    schedule = rate
    if isinstance(rate, dict):
        schedule = keras.optimizers.schedules.deserialize(rate)
    return float(keras.ops.convert_to_numpy(schedule(0)))


def teacher_targets(teacher: keras.Model, kind: OutputKind, weight: float) -> Any:
    """A function (x, y) -> targets mixing labels with the teacher's probabilities on x:
    (1 - weight) * y + weight * p_teacher(x). `y` is a float (N,) for one output unit and
    one-hot (N, C) for several; the teacher's logits go through a sigmoid or softmax."""
    import keras

    from pipeline.models import OutputKind

    units = int(teacher.outputs[0].shape[-1])

    def targets(x: Any, y: Any) -> Any:
        out = teacher(x, training=False)
        if kind is OutputKind.LOGITS:
            out = keras.ops.sigmoid(out) if units == 1 else keras.ops.softmax(out, axis=-1)
        out = keras.ops.reshape(out, (-1,)) if units == 1 else out
        return (1.0 - weight) * y + weight * keras.ops.cast(out, y.dtype)

    return targets


def augmenter(names: Sequence[str], seed: int) -> Any:
    """Random image transforms (Keras preprocessing layers, applied per batch) for names
    of FINETUNE_AUGMENTATIONS: hflip/vflip mirror half of the images, shift translates by
    up to 10% of height and width (reflecting the border)."""
    import keras

    made = {
        Augmentation.HFLIP: lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        Augmentation.VFLIP: lambda: keras.layers.RandomFlip("vertical", seed=seed + 1),
        Augmentation.SHIFT: lambda: keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="reflect", seed=seed + 2
        ),
    }
    return keras.Sequential([made[Augmentation(name)]() for name in names])


def check_augmentable(x: np.ndarray, augment: Sequence[str]) -> None:
    """Image transforms need image inputs (N, H, W, C): a ConfigError otherwise."""
    if augment and x.ndim != 4:
        raise ConfigError(
            f"--structured-augment ({', '.join(augment)}) transforms images: it needs a model "
            f"input of shape (N, H, W, C); received inputs of shape {x.shape}. Leave out "
            "--structured-augment for this model."
        )


def _train_dataset(
    x: np.ndarray, y: np.ndarray, recipe: FinetuneRecipe, *, seed: int, targets: Any
) -> Any:
    """Shuffled batches of (x, y) with the augmentation applied, then the targets."""
    import tensorflow as tf

    check_augmentable(x, recipe.augment)
    data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(recipe.batch_size)
    if recipe.augment:
        transform = augmenter(recipe.augment, seed)
        data = data.map(lambda a, b: (transform(a, training=True), b))
    if targets is not None:
        data = data.map(lambda a, b: (a, targets(a, b)))
    return data.prefetch(2)


@dataclass(frozen=True)
class Finetuning:
    """What fine-tuning did: Keras history, final masks, schedule updates."""

    epochs: int
    steps: int
    history: dict[str, list[float]]
    result: PruningResult | None  # the final masks; None when none were held
    mask_updates: tuple[dict[str, Any], ...]
    batch_size: int = FINETUNE_BATCH_SIZE


def finetune(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    recipe: FinetuneRecipe,
    *,
    masks: HeldMasks | None = None,
    teacher: keras.Model | None = None,
    seed: int = 0,
) -> Finetuning:
    """Fine-tunes on the train split (validating on val) with the masks held.

    Args:
        model: the pruned model, trained in place.
        splits: data; train for fitting, val for validation.
        kind: the model's output kind, for the loss when the model brings none.
        recipe: epochs, augmentation, learning-rate schedule, distillation weight, batch.
        masks: the masks to hold (and the schedule raising them); None holds nothing.
        teacher: the unpruned model, for distillation with weight `recipe.distill`.
            Distillation trains with cross-entropy on soft targets, whatever loss the
            model was compiled with.
        seed: seed of shuffling, augmentation and dropout.

    Raises:
        ConfigError: the recipe augments a model input that is not an image batch.
    """
    import keras

    keras.utils.set_random_seed(seed)
    distilling = teacher is not None and recipe.distill > 0
    loss, one_hot = finetune_loss(model, kind, soft_targets=distilling)
    steps = recipe.total_steps(len(splits.y_train))
    cosine = steps if recipe.lr_schedule is LrSchedule.COSINE else 0
    model.compile(optimizer=finetune_optimizer(model, cosine), loss=loss)
    units = int(model.outputs[0].shape[-1])

    def labels(y: np.ndarray) -> np.ndarray:
        if units == 1:
            return y.astype(np.float32)
        return keras.utils.to_categorical(y, units) if one_hot else y.astype(np.int64)

    keeper = mask_keeper(masks)
    targets = None
    if teacher is not None and recipe.distill > 0:
        targets = teacher_targets(teacher, kind, recipe.distill)
    train = _train_dataset(
        splits.model_inputs("train"), labels(splits.y_train), recipe, seed=seed, targets=targets
    )
    history = model.fit(
        train,
        validation_data=(splits.model_inputs("val"), labels(splits.y_val)),
        epochs=recipe.epochs,
        shuffle=False,  # the dataset shuffles, with the seed
        verbose=0,
        callbacks=[keeper],
    )
    return Finetuning(
        epochs=recipe.epochs,
        steps=keeper.step,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        result=keeper.result,
        mask_updates=tuple(keeper.updates),
        batch_size=recipe.batch_size,
    )
