"""Threshold (magnitude) pruning, Keras 3 native: w' = w * 1{|w| >= tau}.

tau is either given (`threshold`) or derived from a target sparsity S as the S-quantile of
|w|, over all prunable kernels at once (global scope) or per kernel (layer scope). Biases
are pruned only on request, as b' = b * 1{|b| >= tau} with the tau of their layer's kernel.

Fine-tuning keeps the masks: a callback re-applies them after every optimizer step (a
variable constraint set after the first `fit` would not: the train step is already traced),
so a pruned weight never comes back. The polynomial schedule raises the sparsity over the
fine-tuning steps, s_t = s_f + (s_i - s_f) (1 - t/T)^3, recomputing the masks every
`prune_frequency` steps; a new mask is the old mask AND the new magnitude mask.

`--sparsity auto` prunes a fresh copy of the original weights at each sparsity of a grid
(after the configured fine-tuning) and keeps the largest whose validation AUROC stays within
`max_prune_drop` of the original model's and, given the operating point's `rates`, whose
validation sensitivity and specificity stay within their budgets of the original's; when
none does, the model ships unpruned.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import AUTO_SPARSITY, LrSchedule, PruneConfig, PruneSchedule, PruneScope
from pipeline.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind

Score = Callable[["keras.Model"], "float | None"]
# validation {"sensitivity", "specificity"} of a model at the operating point
Rates = Callable[["keras.Model"], "dict[str, float | None]"]

FINETUNE_BATCH_SIZE = 32
_KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel")
PRUNABLE_LAYERS = (
    "Dense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
)


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable kernel of a layer, with the layer's bias on the layer's last kernel."""

    layer: str  # qualified layer name: "outer/inner" inside a nested model
    kind: str  # the layer class, e.g. "Conv2D"
    attr: str  # "kernel", "depthwise_kernel" or "pointwise_kernel"
    variable: Any = field(repr=False)  # keras.Variable
    bias: Any | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.attr}"

    @property
    def bias_name(self) -> str:
        return f"{self.layer}/bias"


def _is_prunable_layer(layer: Any) -> bool:
    import keras

    kinds = tuple(getattr(keras.layers, name) for name in PRUNABLE_LAYERS)
    return isinstance(layer, kinds)


def _walk_layers(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(qualified name, layer) of all leaf layers, nested models included, in order."""
    from pipeline.prune.flatten import display_name

    out = []
    for layer in model.layers:
        name = f"{prefix}{display_name(layer.name)}"  # a flattened layer as it was nested
        if hasattr(layer, "layers") and layer.layers:
            out.extend(_walk_layers(layer, f"{name}/"))
        else:
            out.append((name, layer))
    return out


def _matches(layer: str, pattern: str) -> bool:
    return fnmatch.fnmatchcase(layer, pattern) or fnmatch.fnmatchcase(
        layer.rsplit("/", 1)[-1], pattern
    )


def prunable_weights(
    model: keras.Model,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    keep_first_last_dense: bool = False,
) -> list[PrunableWeight]:
    """Kernels of Dense and convolution layers, filtered by layer-name patterns.

    Normalisation layers and embeddings are never pruned. Patterns are fnmatch globs matched
    against the layer name (or "outer/inner" inside a nested model).

    Args:
        model: the Keras model.
        include: keep only layers matching one of these patterns (empty: all).
        exclude: drop layers matching one of these patterns.
        keep_first_last_dense: leave the first and last prunable layer unpruned.

    Raises:
        ModelError: the model has no prunable layer.
        ConfigError: a pattern matches no prunable layer, or the selection is empty.
    """
    found = []
    for qualified, layer in _walk_layers(model):
        if not _is_prunable_layer(layer):
            continue
        kernels = [(attr, getattr(layer, attr, None)) for attr in _KERNEL_ATTRS]
        seen: set[int] = set()  # an attribute may alias another (Keras versions differ)
        kernels = [
            (attr, var)
            for attr, var in kernels
            if var is not None
            and hasattr(var, "assign")
            and not (id(var) in seen or seen.add(id(var)))
        ]
        bias = getattr(layer, "bias", None)
        for i, (attr, var) in enumerate(kernels):
            owns_bias = i == len(kernels) - 1  # one bias per layer, after the last kernel
            found.append(
                PrunableWeight(
                    qualified, type(layer).__name__, attr, var, bias if owns_bias else None
                )
            )
    if not found:
        raise ModelError(
            f"Model '{model.name}' has no prunable layer; pruning looks for Dense, "
            "Conv1D/2D/3D, DepthwiseConv, SeparableConv and ConvTranspose kernels. Pass "
            "--sparsity 0 to skip pruning."
        )
    names = list(dict.fromkeys(w.layer for w in found))
    for flag, patterns in (("--prune-include", include), ("--prune-exclude", exclude)):
        for pattern in patterns:
            if not any(_matches(name, pattern) for name in names):
                raise ConfigError(
                    f"{flag} '{pattern}' matches no prunable layer of model '{model.name}'; "
                    f"its prunable layers are: {', '.join(names)}. Use one of these names "
                    "or a glob such as 'conv*'."
                )
    selected = [
        name
        for name in names
        if (not include or any(_matches(name, p) for p in include))
        and not any(_matches(name, p) for p in exclude)
    ]
    if keep_first_last_dense:
        selected = [name for name in selected if name not in (names[0], names[-1])]
    if not selected:
        kept = (
            " (--keep-first-last-dense keeps the first and last dense)"
            if keep_first_last_dense
            else ""
        )
        raise ConfigError(
            f"The layer selection leaves nothing to prune in model '{model.name}'{kept}; "
            f"prunable layers are: {', '.join(names)}. Loosen --prune-include/--prune-exclude "
            "or pass --sparsity 0 to skip pruning."
        )
    return [w for w in found if w.layer in selected]


def select_weights(model: keras.Model, config: PruneConfig) -> list[PrunableWeight]:
    """The kernels `config` prunes (see `prunable_weights`)."""
    return prunable_weights(model, config.include, config.exclude, config.keep_first_last_dense)


# --------------------------------------------------------------------------- masks


def threshold_for_sparsity(magnitudes: np.ndarray, sparsity: float) -> float:
    """The smallest tau such that zeroing |w| < tau removes round(S * n) weights.

    With distinct magnitudes the achieved sparsity is exactly round(S * n) / n, i.e. within
    one weight of S; ties at tau are kept, as the formula's >= says.
    """
    flat = np.sort(np.abs(magnitudes).ravel())
    k = min(int(round(sparsity * flat.size)), flat.size - 1)
    return float(flat[k]) if k > 0 else 0.0


def _read(variable: Any) -> np.ndarray:
    return np.asarray(variable.numpy())


@dataclass(frozen=True)
class PruningResult:
    """Thresholds and masks of one pruning pass (True = kept)."""

    threshold: float | None  # the global tau; None in layer scope
    thresholds: dict[str, float]  # tau of each kernel, by "layer/attr"
    sparsity: float | None  # the target S this pass aimed at; None for an absolute tau
    masks: dict[str, np.ndarray] = field(repr=False)  # kernels and (if pruned) biases

    def pruned_fraction(self, names: Sequence[str]) -> float:
        """Fraction of the named masks' entries that are pruned."""
        total = sum(self.masks[n].size for n in names)
        kept = sum(int(np.count_nonzero(self.masks[n])) for n in names)
        return (total - kept) / total if total else 0.0


def compute_masks(
    weights: Sequence[PrunableWeight],
    *,
    sparsity: float | None = None,
    threshold: float | None = None,
    scope: PruneScope = PruneScope.GLOBAL,
    prune_biases: bool = False,
    previous: dict[str, np.ndarray] | None = None,
) -> PruningResult:
    """Magnitude masks of the current weights; nothing is assigned.

    Args:
        weights: the kernels to prune.
        sparsity: target S; tau is the S-quantile of |w| (global or per kernel).
        threshold: absolute tau instead of a sparsity.
        scope: global (one tau) or layer (one tau per kernel); unused with `threshold`.
        prune_biases: also mask biases, with the tau of their layer's (last) kernel.
        previous: masks of an earlier pass; the new mask is previous AND magnitude mask,
            so a pruned weight is never revived.
    """
    if (sparsity is None) == (threshold is None):
        raise ValueError("compute_masks needs exactly one of sparsity and threshold")
    values = {w.name: _read(w.variable) for w in weights}
    global_tau: float | None
    if threshold is not None:
        global_tau = float(threshold)
        taus = {w.name: global_tau for w in weights}
    elif scope is PruneScope.GLOBAL:
        all_mags = np.concatenate([np.abs(v).ravel() for v in values.values()])
        global_tau = threshold_for_sparsity(all_mags, float(sparsity))  # type: ignore[arg-type]
        taus = {w.name: global_tau for w in weights}
    else:
        global_tau = None
        taus = {
            name: threshold_for_sparsity(v, float(sparsity))  # type: ignore[arg-type]
            for name, v in values.items()
        }
    masks: dict[str, np.ndarray] = {}
    for w in weights:
        mask = np.abs(values[w.name]) >= taus[w.name]
        if previous is not None:
            mask &= previous[w.name]
        masks[w.name] = mask
        if prune_biases and w.bias is not None:
            bias_mask = np.abs(_read(w.bias)) >= taus[w.name]
            if previous is not None and w.bias_name in previous:
                bias_mask &= previous[w.bias_name]
            masks[w.bias_name] = bias_mask
    return PruningResult(global_tau, taus, sparsity, masks)


def _variables(weights: Sequence[PrunableWeight]) -> dict[str, Any]:
    out = {}
    for w in weights:
        out[w.name] = w.variable
        if w.bias is not None:
            out[w.bias_name] = w.bias
    return out


def apply_masks(weights: Sequence[PrunableWeight], masks: dict[str, np.ndarray]) -> None:
    """Assigns w * mask to every masked variable."""
    variables = _variables(weights)
    for name, mask in masks.items():
        value = _read(variables[name])
        variables[name].assign((value * mask).astype(value.dtype))


def prune(
    model: keras.Model, config: PruneConfig, *, sparsity: float | None = None
) -> PruningResult:
    """One-shot pruning of `model` in place, without fine-tuning.

    Args:
        model: the Keras model; its selected kernels (and biases if asked) are masked.
        config: threshold or target sparsity, scope, biases and layer selection.
        sparsity: overrides the config's target sparsity (required when it is auto).

    Raises:
        ModelError: no prunable layer. ConfigError: bad layer selection.
    """
    if sparsity is None and config.threshold is None:
        if config.auto:
            raise ConfigError(
                f"prune() needs a numeric sparsity with --sparsity {AUTO_SPARSITY}; use "
                "prune_model() to search it, or pass sparsity=S."
            )
        sparsity = float(config.target_sparsity)  # type: ignore[arg-type]
    weights = select_weights(model, config)
    result = compute_masks(
        weights,
        sparsity=sparsity,
        threshold=None if sparsity is not None else config.threshold,
        scope=config.scope,
        prune_biases=config.prune_biases,
    )
    apply_masks(weights, result.masks)
    return result


def measure_sparsity(model: keras.Model, names: Sequence[str] | None = None) -> dict[str, float]:
    """Zero fraction of the named kernels (layer/attr; default all), read from the model."""
    by_name = {w.name: w for w in prunable_weights(model)}
    out = {}
    for name in by_name if names is None else names:
        v = _read(by_name[name].variable)
        out[name] = 1.0 - np.count_nonzero(v) / v.size
    return out


# --------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class PolynomialSchedule:
    """s_t = s_f + (s_i - s_f) (1 - t/T)^3, masks recomputed every `frequency` steps.

    T (`end_step`) is the last mask update at or before the final optimizer step, so the
    final sparsity is reached exactly and then fine-tuned for the remaining steps. With a
    single update (T = 0) the final sparsity is applied at once.
    """

    initial: float
    final: float
    end_step: int
    frequency: int

    @classmethod
    def for_training(
        cls, initial: float, final: float, total_steps: int, frequency: int
    ) -> PolynomialSchedule:
        end = frequency * ((max(total_steps, 1) - 1) // frequency)
        return cls(min(initial, final), final, end, frequency)

    def sparsity_at(self, step: int) -> float:
        if self.end_step <= 0:
            return self.final
        progress = min(step, self.end_step) / self.end_step
        return self.final + (self.initial - self.final) * (1.0 - progress) ** 3

    def is_update(self, step: int) -> bool:
        """Whether the masks are recomputed before optimizer step `step` (step 0 is the
        initial pruning, done before fine-tuning starts)."""
        return 0 < step <= self.end_step and step % self.frequency == 0


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


def _finetune_optimizer(model: keras.Model, cosine_steps: int = 0) -> Any:
    """A fresh copy of the model's own optimizer, else Adam(1e-3). With `cosine_steps` a
    numeric learning rate decays from its value to 0 over that many steps (a schedule the
    model brings is kept)."""
    import keras

    optimizer = getattr(model, "optimizer", None) if getattr(model, "compiled", False) else None
    optimizer = optimizer or keras.optimizers.Adam(1e-3)
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if cosine_steps and isinstance(rate, (int, float)):
        config["learning_rate"] = keras.optimizers.schedules.CosineDecay(float(rate), cosine_steps)
    return type(optimizer).from_config(config)


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
        "hflip": lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        "vflip": lambda: keras.layers.RandomFlip("vertical", seed=seed + 1),
        "shift": lambda: keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="reflect", seed=seed + 2
        ),
    }
    return keras.Sequential([made[name]() for name in names])


def check_augmentable(x: np.ndarray, augment: Sequence[str]) -> None:
    """Image transforms need image inputs (N, H, W, C): a ConfigError otherwise."""
    if augment and x.ndim != 4:
        raise ConfigError(
            f"--structured-augment ({', '.join(augment)}) transforms images: it needs a model "
            f"input of shape (N, H, W, C); received inputs of shape {x.shape}. Leave out "
            "--structured-augment for this model."
        )


def _train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    augment: Sequence[str],
    targets: Any,
) -> Any:
    """Shuffled batches of (x, y) with the augmentation applied, then the targets."""
    import tensorflow as tf

    check_augmentable(x, augment)
    data = tf.data.Dataset.from_tensor_slices((x, y))
    data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(FINETUNE_BATCH_SIZE)
    if augment:
        transform = augmenter(augment, seed)
        data = data.map(lambda a, b: (transform(a, training=True), b))
    if targets is not None:
        data = data.map(lambda a, b: (a, targets(a, b)))
    return data.prefetch(2)


def _mask_keeper(
    weights: Sequence[PrunableWeight],
    result: PruningResult,
    schedule: PolynomialSchedule | None,
    scope: PruneScope,
    prune_biases: bool,
) -> Any:
    """A callback holding the masks after every batch and running the schedule's updates."""
    import keras

    variables = _variables(weights)
    kernels = [w.name for w in weights]

    class KeepMasks(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.result = result
            self.updates: list[dict[str, Any]] = []
            self.step = 0
            self._set(result.masks)

        def _set(self, masks: dict[str, np.ndarray]) -> None:
            self._pairs = [
                (
                    variables[name],
                    keras.ops.convert_to_tensor(mask.astype(_read(variables[name]).dtype)),
                )
                for name, mask in masks.items()
            ]

        def _apply(self) -> None:
            for var, mask in self._pairs:
                var.assign(var * mask)

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if schedule is None or not schedule.is_update(self.step):
                return
            target = schedule.sparsity_at(self.step)
            self.result = compute_masks(
                weights,
                sparsity=target,
                scope=scope,
                prune_biases=prune_biases,
                previous=self.result.masks,
            )
            self._set(self.result.masks)
            self._apply()
            self.updates.append(
                {
                    "step": self.step,
                    "target_sparsity": target,
                    "pruned_fraction": self.result.pruned_fraction(kernels),
                }
            )

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._apply()
            self.step += 1

        def on_train_end(self, logs: dict | None = None) -> None:
            self._apply()

    return KeepMasks()


@dataclass(frozen=True)
class Finetuning:
    """What fine-tuning did: Keras history, final masks, schedule updates."""

    epochs: int
    steps: int
    history: dict[str, list[float]]
    result: PruningResult
    mask_updates: tuple[dict[str, Any], ...]


def steps_per_epoch(splits: Splits) -> int:
    return max(1, math.ceil(len(splits.y_train) / FINETUNE_BATCH_SIZE))


def finetune(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    weights: Sequence[PrunableWeight],
    result: PruningResult,
    config: PruneConfig,
    *,
    schedule: PolynomialSchedule | None = None,
    seed: int = 0,
    augment: Sequence[str] = (),
    lr_schedule: LrSchedule = LrSchedule.CONSTANT,
    teacher: keras.Model | None = None,
    distill: float = 0.0,
) -> Finetuning:
    """Fine-tunes on the train split (validating on val) with the masks held.

    Args:
        model: the pruned model, trained in place.
        splits: data; train for fitting, val for validation.
        kind: the model's output kind, for the loss when the model brings none.
        weights: the pruned kernels.
        result: their current masks.
        config: epochs, scope and biases.
        schedule: polynomial schedule raising the sparsity; None keeps `result` fixed.
        seed: seed of shuffling, augmentation and dropout.
        augment: random transforms of the training images (FINETUNE_AUGMENTATIONS).
        lr_schedule: constant, or cosine decay to 0 over the fine-tuning steps.
        teacher: the unpruned model, for distillation.
        distill: weight of the teacher's probabilities in the targets (0: labels only).
            Distillation trains with cross-entropy on soft targets, whatever loss the
            model was compiled with.
    """
    import keras

    keras.utils.set_random_seed(seed)
    distilling = teacher is not None and distill > 0
    loss, one_hot = finetune_loss(model, kind, soft_targets=distilling)
    steps = config.finetune_epochs * steps_per_epoch(splits)
    cosine = steps if lr_schedule is LrSchedule.COSINE else 0
    model.compile(optimizer=_finetune_optimizer(model, cosine), loss=loss)
    units = int(model.outputs[0].shape[-1])

    def labels(y: np.ndarray) -> np.ndarray:
        if units == 1:
            return y.astype(np.float32)
        return keras.utils.to_categorical(y, units) if one_hot else y.astype(np.int64)

    keeper = _mask_keeper(weights, result, schedule, config.scope, config.prune_biases)
    train = _train_dataset(
        splits.model_inputs("train"),
        labels(splits.y_train),
        seed=seed,
        augment=augment,
        targets=teacher_targets(teacher, kind, distill) if distilling else None,
    )
    history = model.fit(
        train,
        validation_data=(splits.model_inputs("val"), labels(splits.y_val)),
        epochs=config.finetune_epochs,
        shuffle=False,  # the dataset shuffles, with the seed
        verbose=0,
        callbacks=[keeper],
    )
    return Finetuning(
        epochs=config.finetune_epochs,
        steps=keeper.step,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        result=keeper.result,
        mask_updates=tuple(keeper.updates),
    )


# --------------------------------------------------------------------------- the stage


@dataclass(frozen=True)
class LayerPruning:
    """What pruning did to one kernel, read back from the weights that ship."""

    name: str
    kind: str
    params: int
    zeros: int
    threshold: float
    bias_params: int | None = None  # set when biases were pruned
    bias_zeros: int | None = None

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "params": self.params,
            "zeros": self.zeros,
            "sparsity": self.sparsity,
            "threshold": self.threshold,
        }
        if self.bias_params is not None:
            doc["bias_params"] = self.bias_params
            doc["bias_zeros"] = self.bias_zeros
        return doc


def layer_stats(
    weights: Sequence[PrunableWeight], result: PruningResult | None, prune_biases: bool
) -> tuple[LayerPruning, ...]:
    """Per-kernel zeros of the current weights, with the tau that produced them."""
    out = []
    for w in weights:
        v = _read(w.variable)
        bias_params = bias_zeros = None
        if prune_biases and w.bias is not None:
            b = _read(w.bias)
            bias_params, bias_zeros = int(b.size), int(b.size - np.count_nonzero(b))
        tau = result.thresholds[w.name] if result is not None else 0.0
        out.append(
            LayerPruning(
                w.name,
                w.kind,
                int(v.size),
                int(v.size - np.count_nonzero(v)),
                float(tau),
                bias_params,
                bias_zeros,
            )
        )
    return tuple(out)


def _overall(layers: Sequence[LayerPruning]) -> float:
    params = sum(layer.params for layer in layers)
    return sum(layer.zeros for layer in layers) / params if params else 0.0


@dataclass(frozen=True)
class Trial:
    """One prune (+ fine-tune) run at one target."""

    sparsity: float | None  # target S; None with an absolute threshold
    result: PruningResult  # the final masks
    sparsity_before_finetune: float
    val_auroc_pruned: float | None
    finetuning: Finetuning | None
    val_auroc_finetuned: float | None

    @property
    def val_auroc(self) -> float | None:
        """Validation AUROC of the model this trial ships."""
        return self.val_auroc_finetuned if self.finetuning else self.val_auroc_pruned


def run_trial(
    model: keras.Model,
    weights: Sequence[PrunableWeight],
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    sparsity: float | None,
    *,
    score: Score,
    seed: int = 0,
) -> Trial:
    """Prunes `model` in place at `sparsity` (or the config's threshold) and fine-tunes it."""
    schedule = None
    if config.schedule is PruneSchedule.POLYNOMIAL:
        assert sparsity is not None  # PruneConfig rejects a threshold with this schedule
        total = steps_per_epoch(splits) * config.finetune_epochs
        schedule = PolynomialSchedule.for_training(
            config.initial_sparsity, sparsity, total, config.prune_frequency
        )
        start: float | None = schedule.sparsity_at(0)
    else:
        start = sparsity
    result = compute_masks(
        weights,
        sparsity=start,
        threshold=config.threshold if start is None else None,
        scope=config.scope,
        prune_biases=config.prune_biases,
    )
    apply_masks(weights, result.masks)
    before = _overall(layer_stats(weights, result, False))
    auroc_pruned = score(model)
    tuning = auroc_tuned = None
    if config.finetune_epochs > 0:
        tuning = finetune(
            model, splits, kind, weights, result, config, schedule=schedule, seed=seed
        )
        result = tuning.result
        auroc_tuned = score(model)
    return Trial(sparsity, result, before, auroc_pruned, tuning, auroc_tuned)


@dataclass(frozen=True)
class AutoSearch:
    """The `--sparsity auto` curve and its decision."""

    grid: tuple[float, ...]
    max_prune_drop: float
    baseline_val_auroc: float | None
    curve: tuple[dict[str, Any], ...]
    chosen_sparsity: float
    reason: str
    max_sensitivity_drop: float | None = None  # None: rates not judged (no operating point)
    max_specificity_drop: float | None = None
    max_brier_increase: float | None = None
    baseline_val_sensitivity: float | None = None
    baseline_val_specificity: float | None = None
    baseline_val_brier: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "grid": list(self.grid),
            "max_prune_drop": self.max_prune_drop,
            "baseline_val_auroc": self.baseline_val_auroc,
            "max_sensitivity_drop": self.max_sensitivity_drop,
            "max_specificity_drop": self.max_specificity_drop,
            "max_brier_increase": self.max_brier_increase,
            "baseline_val_sensitivity": self.baseline_val_sensitivity,
            "baseline_val_specificity": self.baseline_val_specificity,
            "baseline_val_brier": self.baseline_val_brier,
            "curve": list(self.curve),
            "chosen_sparsity": self.chosen_sparsity,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PruningOutcome:
    """The pruning stage's result: the model as it ships, and how it got there."""

    config: PruneConfig
    layers: tuple[LayerPruning, ...]
    trial: Trial | None  # None: nothing was pruned
    original_val_auroc: float | None
    auto: AutoSearch | None = None
    note: str | None = None

    @property
    def target_sparsity(self) -> float | None:
        if self.trial is None:
            return 0.0
        return self.trial.sparsity

    @property
    def achieved_sparsity(self) -> float:
        return _overall(self.layers)

    def to_json(self) -> dict[str, Any]:
        """The report's `pruning` section."""
        trial, cfg = self.trial, self.config
        result = trial.result if trial else None
        tuning = trial.finetuning if trial else None
        if result is not None:
            threshold = result.threshold
        else:
            threshold = None if cfg.scope is PruneScope.LAYER else 0.0
        formula = "w' = w * 1{|w| >= threshold}"
        if cfg.prune_biases:
            formula += "; b' = b * 1{|b| >= threshold}"
        mode = "threshold" if cfg.threshold is not None else AUTO_SPARSITY if cfg.auto else "fixed"
        return {
            "method": "magnitude_threshold",
            "formula": formula,
            "sparsity_mode": mode,
            "scope": cfg.scope.value,
            "schedule": cfg.schedule.value,
            "threshold": threshold,
            "thresholds": {layer.name: layer.threshold for layer in self.layers},
            "target_sparsity": self.target_sparsity,
            "achieved_sparsity": self.achieved_sparsity,
            "achieved_sparsity_before_finetune": (
                trial.sparsity_before_finetune if trial else self.achieved_sparsity
            ),
            "achieved_sparsity_after_finetune": self.achieved_sparsity,
            "biases_pruned": cfg.prune_biases and trial is not None,
            "include": list(cfg.include),
            "exclude": list(cfg.exclude),
            "keep_first_last_dense": cfg.keep_first_last_dense,
            "finetune_epochs": cfg.finetune_epochs if tuning else 0,
            "finetune": None
            if tuning is None
            else {
                "epochs": tuning.epochs,
                "steps": tuning.steps,
                "batch_size": FINETUNE_BATCH_SIZE,
                "schedule": cfg.schedule.value,
                "initial_sparsity": (
                    cfg.initial_sparsity if cfg.schedule is PruneSchedule.POLYNOMIAL else None
                ),
                "prune_frequency": (
                    cfg.prune_frequency if cfg.schedule is PruneSchedule.POLYNOMIAL else None
                ),
                "mask_updates": list(tuning.mask_updates),
                "history": tuning.history,
            },
            "validation_auroc": {
                "original": self.original_val_auroc,
                "pruned": trial.val_auroc_pruned if trial else self.original_val_auroc,
                "finetuned": trial.val_auroc_finetuned if trial else None,
            },
            "auto": self.auto.to_json() if self.auto else None,
            "note": self.note,
            "layers": [layer.to_json() for layer in self.layers],
        }


def prune_model(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    *,
    score: Score,
    seed: int = 0,
    rates: Rates | None = None,
    max_sensitivity_drop: float = 0.02,
    max_specificity_drop: float = 0.05,
    max_brier_increase: float = 1.0,
) -> PruningOutcome:
    """The pruning stage: prune (searching the sparsity if auto) and fine-tune, in place.

    Args:
        model: the model; pruned and fine-tuned in place.
        splits: train split for fine-tuning, val split for validation and the auto search.
        kind: the model's output kind.
        config: the pruning configuration.
        score: validation AUROC of a model (None when undefined).
        seed: seed of fine-tuning.
        rates: validation sensitivity and specificity of a model at the operating point;
            auto then also keeps them within `max_sensitivity_drop` and
            `max_specificity_drop` of the original model's.
        max_sensitivity_drop: the validation sensitivity auto may lose.
        max_specificity_drop: the validation specificity auto may lose.
        max_brier_increase: how much the validation Brier score may rise.

    Raises:
        ModelError: no prunable layer (unless the sparsity is 0).
        ConfigError: a layer pattern matches nothing or the selection is empty.
    """
    original_auroc = score(model)
    if config.target_sparsity == 0:
        try:
            weights = select_weights(model, config)
        except ModelError:
            weights = []
        return PruningOutcome(
            config,
            layer_stats(weights, None, False),
            None,
            original_auroc,
            note="--sparsity 0: threshold pruning skipped.",
        )
    weights = select_weights(model, config)
    if not config.auto:
        sparsity = None if config.threshold is not None else float(config.target_sparsity)  # type: ignore[arg-type]
        trial = run_trial(model, weights, splits, kind, config, sparsity, score=score, seed=seed)
        return PruningOutcome(
            config, layer_stats(weights, trial.result, config.prune_biases), trial, original_auroc
        )
    judge = None
    if rates is not None:
        from pipeline.evaluate.operating_point import RateBudget

        budget = RateBudget(
            max_sensitivity_drop,
            max_specificity_drop,
            rates(model),
            max_brier_increase=max_brier_increase,
        )
        judge = _RateJudge(rates, budget)
    return _auto(model, weights, splits, kind, config, original_auroc, score, seed, judge)


@dataclass(frozen=True)
class _RateJudge:
    """Validation rates of a model at the operating point against the original's."""

    rates: Rates
    budget: Any  # pipeline.evaluate.operating_point.RateBudget

    def judge(self, model: keras.Model) -> tuple[dict[str, float | None], bool]:
        now = self.rates(model)
        return now, self.budget.meets(now)

    def fields(self) -> dict[str, Any]:
        b = self.budget
        return {
            "max_sensitivity_drop": b.max_sensitivity_drop,
            "max_specificity_drop": b.max_specificity_drop,
            "max_brier_increase": b.max_brier_increase,
            "baseline_val_sensitivity": b.reference.get("sensitivity"),
            "baseline_val_specificity": b.reference.get("specificity"),
            "baseline_val_brier": b.reference.get("brier"),
        }


def _auto(
    model: keras.Model,
    weights: Sequence[PrunableWeight],
    splits: Splits,
    kind: OutputKind,
    config: PruneConfig,
    baseline: float | None,
    score: Score,
    seed: int,
    rates: _RateJudge | None = None,
) -> PruningOutcome:
    grid = config.auto_grid
    budget = config.max_prune_drop
    if baseline is None:
        reason = (
            "validation AUROC of the original model is undefined (the validation split "
            "holds a single class), so auto cannot judge pruning; the model ships "
            "unpruned. Pass --sparsity S to prune anyway."
        )
        search = AutoSearch(grid, budget, None, (), 0.0, reason, **_fields(rates))
        return PruningOutcome(
            config, layer_stats(weights, None, False), None, None, search, note=reason
        )
    original = model.get_weights()
    curve = []
    best: tuple[Trial, list[np.ndarray]] | None = None
    for sparsity in grid:
        model.set_weights(original)
        trial = run_trial(model, weights, splits, kind, config, sparsity, score=score, seed=seed)
        auroc = trial.val_auroc
        # a tiny slack so that "no drop at all" passes a zero budget despite float noise
        auroc_ok = auroc is not None and auroc >= baseline - budget - 1e-12
        val_rates, rates_ok = rates.judge(model) if rates else ({}, True)
        ok = auroc_ok and rates_ok
        curve.append(
            {
                "sparsity": sparsity,
                "achieved_sparsity": _overall(layer_stats(weights, trial.result, False)),
                "val_auroc_pruned": trial.val_auroc_pruned,
                "val_auroc_finetuned": trial.val_auroc_finetuned,
                "val_auroc": auroc,
                **{f"val_{k}": v for k, v in val_rates.items()},
                "within_budget": ok,
            }
        )
        if ok and (best is None or sparsity > best[0].sparsity):  # type: ignore[operator]
            best = (trial, model.get_weights())
    if best is None:
        model.set_weights(original)
        tried = ", ".join(f"{p['sparsity']:g} -> {_point_text(p)}" for p in curve)
        also = _rates_text(rates)
        reason = (
            f"no sparsity of the grid kept validation AUROC within --max-prune-drop "
            f"{budget:g} of the original {baseline:.4f}{also} ({tried}); the model ships "
            "unpruned. Raise --max-prune-drop, add --finetune-epochs, or pass "
            "--sparsity S explicitly."
        )
        search = AutoSearch(grid, budget, baseline, tuple(curve), 0.0, reason, **_fields(rates))
        return PruningOutcome(
            config, layer_stats(weights, None, False), None, baseline, search, note=reason
        )
    trial, chosen_weights = best
    model.set_weights(chosen_weights)
    reason = (
        f"largest grid sparsity whose validation AUROC {_auroc_text(trial.val_auroc)} "
        f"stays within {budget:g} of the original {baseline:.4f}{_rates_text(rates)}"
    )
    search = AutoSearch(
        grid,
        budget,
        baseline,
        tuple(curve),
        float(trial.sparsity or 0.0),
        reason,
        **_fields(rates),
    )
    return PruningOutcome(
        config, layer_stats(weights, trial.result, config.prune_biases), trial, baseline, search
    )


def _auroc_text(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _point_text(point: dict[str, Any]) -> str:
    text = _auroc_text(point["val_auroc"])
    if point.get("val_sensitivity") is not None:
        text += f" (sensitivity {point['val_sensitivity']:.3f}"
        text += f", specificity {_auroc_text(point.get('val_specificity'))[:5]})"
    return text


def _fields(rates: _RateJudge | None) -> dict[str, Any]:
    return rates.fields() if rates else {}


def _rates_text(rates: _RateJudge | None) -> str:
    return rates.budget.text() if rates else ""
