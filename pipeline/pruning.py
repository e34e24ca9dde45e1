"""Threshold (magnitude) pruning, Keras 3 native: w' = w * 1{|w| >= tau}.

tau is either given (`threshold`) or derived from a target sparsity S as the S-quantile of
|w|, over all prunable kernels at once (global scope) or per kernel (layer scope). Biases
are pruned only on request, with the same tau. Masks are kept through fine-tuning by
re-applying them after every optimizer step, so a pruned weight never comes back.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import PruneConfig, PruneScope
from pipeline.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import keras

    from pipeline.data import Splits
    from pipeline.models import OutputKind


@dataclass(frozen=True)
class PrunableWeight:
    """One prunable kernel of a layer."""

    layer: str
    kind: str  # the layer class, e.g. "Conv2D"
    attr: str  # "kernel", "depthwise_kernel" or "pointwise_kernel"
    variable: Any  # keras.Variable
    bias: Any | None  # the layer's bias variable, if any

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.attr}"


@dataclass(frozen=True)
class LayerPruning:
    """What pruning did to one kernel."""

    name: str
    kind: str
    params: int
    zeros: int
    threshold: float

    @property
    def sparsity(self) -> float:
        return self.zeros / self.params if self.params else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "params": self.params,
                "zeros": self.zeros, "sparsity": self.sparsity, "threshold": self.threshold}


@dataclass(frozen=True)
class PruningResult:
    """Thresholds, masks and statistics of one pruning pass."""

    config: PruneConfig
    threshold: float | None  # the global tau; None in layer scope
    layers: tuple[LayerPruning, ...]
    masks: dict[str, np.ndarray] = field(repr=False)

    @property
    def achieved_sparsity(self) -> float:
        params = sum(layer.params for layer in self.layers)
        return sum(layer.zeros for layer in self.layers) / params if params else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "magnitude_threshold",
            "formula": "w' = w * 1{|w| >= threshold}",
            "scope": self.config.scope.value,
            "threshold": self.threshold,
            "target_sparsity": self.config.target_sparsity,
            "achieved_sparsity": self.achieved_sparsity,
            "biases_pruned": self.config.prune_biases,
            "finetune_epochs": self.config.finetune_epochs,
            "layers": [layer.to_json() for layer in self.layers],
        }


_KERNEL_ATTRS = ("kernel", "depthwise_kernel", "pointwise_kernel")
PRUNABLE_LAYERS = (
    "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
    "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
    "SeparableConv2D",
)


def _is_prunable_layer(layer: Any) -> bool:
    import keras

    kinds = tuple(getattr(keras.layers, name) for name in PRUNABLE_LAYERS)
    return isinstance(layer, kinds)


def _walk_layers(model: Any) -> list[Any]:
    """All leaf layers, nested models included, in topological order."""
    out = []
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            out.extend(_walk_layers(layer))
        else:
            out.append(layer)
    return out


def prunable_weights(model: keras.Model, include: Sequence[str] = (),
                     exclude: Sequence[str] = ()) -> list[PrunableWeight]:
    """Kernels of Dense and convolution layers, filtered by layer-name patterns.

    Raises:
        ConfigError: a pattern matches no prunable layer.
        ModelError: the model has no prunable layer.
    """
    found = []
    for layer in _walk_layers(model):
        if not _is_prunable_layer(layer):
            continue
        bias = getattr(layer, "bias", None)
        for attr in _KERNEL_ATTRS:
            var = getattr(layer, attr, None)
            if var is not None and hasattr(var, "assign"):
                found.append(PrunableWeight(layer.name, type(layer).__name__, attr, var, bias))
    if not found:
        raise ModelError(
            f"Model '{model.name}' has no prunable layer; pruning looks for Dense, Conv1D/2D/3D, "
            "DepthwiseConv, SeparableConv and ConvTranspose kernels. Pass --sparsity 0 to skip "
            "pruning."
        )
    names = sorted({w.layer for w in found})
    for pattern in (*include, *exclude):
        if not fnmatch.filter(names, pattern):
            raise ConfigError(
                f"Layer pattern '{pattern}' matches no prunable layer; prunable layers are: "
                f"{', '.join(names)}."
            )
    if include:
        found = [w for w in found if any(fnmatch.fnmatchcase(w.layer, p) for p in include)]
    if exclude:
        found = [w for w in found if not any(fnmatch.fnmatchcase(w.layer, p) for p in exclude)]
    return found


def threshold_for_sparsity(magnitudes: np.ndarray, sparsity: float) -> float:
    """The smallest tau such that zeroing |w| < tau removes round(S * n) weights.

    With distinct magnitudes the achieved sparsity is exactly round(S * n) / n, i.e. within
    one weight of S; ties at tau are kept, as the formula's >= says.
    """
    flat = np.sort(np.abs(magnitudes).ravel())
    k = min(int(round(sparsity * flat.size)), flat.size - 1)
    return float(flat[k]) if k > 0 else 0.0


def prune(model: keras.Model, config: PruneConfig, include: Sequence[str] = (),
          exclude: Sequence[str] = ()) -> PruningResult:
    """Prunes `model` in place and returns the masks and statistics."""
    weights = prunable_weights(model, include, exclude)
    values = {w.name: np.asarray(w.variable.numpy()) for w in weights}
    if config.threshold is not None:
        thresholds = {w.name: config.threshold for w in weights}
        global_tau: float | None = config.threshold
    elif config.scope is PruneScope.GLOBAL:
        assert config.target_sparsity is not None
        all_mags = np.concatenate([np.abs(v).ravel() for v in values.values()])
        global_tau = threshold_for_sparsity(all_mags, config.target_sparsity)
        thresholds = {w.name: global_tau for w in weights}
    else:
        assert config.target_sparsity is not None
        global_tau = None
        thresholds = {name: threshold_for_sparsity(v, config.target_sparsity)
                      for name, v in values.items()}

    masks: dict[str, np.ndarray] = {}
    layers = []
    for w in weights:
        tau = thresholds[w.name]
        mask = np.abs(values[w.name]) >= tau
        masks[w.name] = mask
        w.variable.assign(values[w.name] * mask)
        if config.prune_biases and w.bias is not None and w.attr != "depthwise_kernel":
            bias_name = f"{w.layer}/bias"
            b = np.asarray(w.bias.numpy())
            masks[bias_name] = np.abs(b) >= tau
            w.bias.assign(b * masks[bias_name])
        layers.append(LayerPruning(w.name, w.kind, int(mask.size),
                                   int(mask.size - np.count_nonzero(mask)), float(tau)))
    return PruningResult(config, global_tau, tuple(layers), masks)


def measure_sparsity(model: keras.Model, names: Sequence[str]) -> dict[str, float]:
    """Zero fraction of the named kernels (layer/attr), read back from the model."""
    by_name = {w.name: w for w in prunable_weights(model)}
    out = {}
    for name in names:
        v = np.asarray(by_name[name].variable.numpy())
        out[name] = 1.0 - np.count_nonzero(v) / v.size
    return out


def _variables_by_name(model: keras.Model) -> dict[str, Any]:
    out = {}
    for w in prunable_weights(model):
        out[w.name] = w.variable
        if w.bias is not None:
            out[f"{w.layer}/bias"] = w.bias
    return out


def make_mask_callback(model: keras.Model, masks: dict[str, np.ndarray]) -> Any:
    """A Keras callback re-applying `masks` after every training batch.

    Setting a variable constraint after the first fit does not work (the train step is
    already traced); a callback holds whatever the optimizer does, momentum included.
    """
    import keras

    variables = _variables_by_name(model)
    pairs = [(variables[name], mask.astype(np.float32)) for name, mask in masks.items()]

    class KeepMasks(keras.callbacks.Callback):
        def _apply(self) -> None:
            for var, mask in pairs:
                var.assign(var * mask)

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._apply()

        def on_train_end(self, logs: dict | None = None) -> None:
            self._apply()

    return KeepMasks()


def finetune(model: keras.Model, splits: Splits, masks: dict[str, np.ndarray],
             kind: OutputKind, epochs: int, seed: int = 0) -> dict[str, list[float]]:
    """Fine-tunes with masks fixed on the train split, validating on val."""
    import keras

    from pipeline.models import OutputKind

    if epochs == 0:
        return {}
    keras.utils.set_random_seed(seed)
    units = int(model.outputs[0].shape[-1])
    loss = getattr(model, "loss", None)
    if loss is None:
        if units == 1:
            loss = keras.losses.BinaryCrossentropy(from_logits=kind is OutputKind.LOGITS)
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=kind is OutputKind.LOGITS)
    optimizer = getattr(model, "optimizer", None)
    optimizer = (type(optimizer).from_config(optimizer.get_config()) if optimizer is not None
                 else keras.optimizers.Adam(1e-3))
    model.compile(optimizer=optimizer, loss=loss)
    y_train = splits.y_train.astype(np.float32 if units == 1 else np.int64)
    y_val = splits.y_val.astype(np.float32 if units == 1 else np.int64)
    history = model.fit(
        splits.model_inputs("train"), y_train,
        validation_data=(splits.model_inputs("val"), y_val),
        epochs=epochs, batch_size=32, shuffle=True, verbose=0,
        callbacks=[make_mask_callback(model, masks)],
    )
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
