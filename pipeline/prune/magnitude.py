"""Threshold (magnitude) pruning, Keras 3 native: w' = w * 1{|w| >= tau}.

tau is either given (`threshold`) or derived from a target sparsity S as the S-quantile of
|w|, over all prunable kernels at once (global scope) or per kernel (layer scope). Biases
are pruned only on request, as b' = b * 1{|b| >= tau} with the tau of their layer's kernel.

This module selects the prunable kernels, computes and applies their masks and measures
what they hold. Fine-tuning with the masks held is `pipeline.prune.finetune`, the
polynomial schedule `pipeline.prune.schedule`, the `--sparsity auto` search
`pipeline.prune.auto`, and the pruning step with its report `pipeline.prune.outcome`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import AUTO_SPARSITY, PruneConfig, PruneScope
from pipeline.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import keras

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
    from pipeline.models.flatten import display_name

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


def _layer_weights(qualified: str, layer: Any) -> list[PrunableWeight]:
    """The kernels of one prunable layer; the layer's bias goes with its last kernel."""
    kernels: list[tuple[str, Any]] = []
    seen: set[int] = set()  # an attribute may alias another (Keras versions differ)
    for attr in _KERNEL_ATTRS:
        var = getattr(layer, attr, None)
        if var is None or not hasattr(var, "assign") or id(var) in seen:
            continue
        seen.add(id(var))
        kernels.append((attr, var))
    bias = getattr(layer, "bias", None)
    kind = type(layer).__name__
    last = len(kernels) - 1  # one bias per layer, after the last kernel
    return [
        PrunableWeight(qualified, kind, attr, var, bias if i == last else None)
        for i, (attr, var) in enumerate(kernels)
    ]


def _check_patterns(
    model: Any, names: list[str], include: Sequence[str], exclude: Sequence[str]
) -> None:
    """ConfigError when a pattern matches no prunable layer."""
    for flag, patterns in (("--prune-include", include), ("--prune-exclude", exclude)):
        for pattern in patterns:
            if not any(_matches(name, pattern) for name in names):
                raise ConfigError(
                    f"{flag} '{pattern}' matches no prunable layer of model '{model.name}'; "
                    f"its prunable layers are: {', '.join(names)}. Use one of these names "
                    "or a glob such as 'conv*'."
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
    found = [
        weight
        for qualified, layer in _walk_layers(model)
        if _is_prunable_layer(layer)
        for weight in _layer_weights(qualified, layer)
    ]
    if not found:
        raise ModelError(
            f"Model '{model.name}' has no prunable layer; pruning looks for Dense, "
            "Conv1D/2D/3D, DepthwiseConv, SeparableConv and ConvTranspose kernels. Pass "
            "--sparsity 0 to skip pruning."
        )
    names = list(dict.fromkeys(w.layer for w in found))
    _check_patterns(model, names, include, exclude)
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


def read_array(variable: Any) -> np.ndarray:
    """The value of a Keras variable as a numpy array."""
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


def _thresholds(
    weights: Sequence[PrunableWeight],
    values: dict[str, np.ndarray],
    sparsity: float | None,
    threshold: float | None,
    scope: PruneScope,
) -> tuple[float | None, dict[str, float]]:
    """The global tau (None in layer scope) and the tau of every kernel."""
    if threshold is not None:
        return float(threshold), {w.name: float(threshold) for w in weights}
    assert sparsity is not None  # compute_masks checks that one of them is set
    if scope is PruneScope.GLOBAL:
        all_mags = np.concatenate([np.abs(v).ravel() for v in values.values()])
        global_tau = threshold_for_sparsity(all_mags, float(sparsity))
        return global_tau, {w.name: global_tau for w in weights}
    return None, {name: threshold_for_sparsity(v, float(sparsity)) for name, v in values.items()}


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
    values = {w.name: read_array(w.variable) for w in weights}
    global_tau, taus = _thresholds(weights, values, sparsity, threshold, scope)
    masks: dict[str, np.ndarray] = {}
    for w in weights:
        mask = np.abs(values[w.name]) >= taus[w.name]
        if previous is not None:
            mask &= previous[w.name]
        masks[w.name] = mask
        if prune_biases and w.bias is not None:
            bias_mask = np.abs(read_array(w.bias)) >= taus[w.name]
            if previous is not None and w.bias_name in previous:
                bias_mask &= previous[w.bias_name]
            masks[w.bias_name] = bias_mask
    return PruningResult(global_tau, taus, sparsity, masks)


def masked_variables(weights: Sequence[PrunableWeight]) -> dict[str, Any]:
    """The variables of `weights` by mask name: kernels and their biases."""
    out = {}
    for w in weights:
        out[w.name] = w.variable
        if w.bias is not None:
            out[w.bias_name] = w.bias
    return out


def apply_masks(weights: Sequence[PrunableWeight], masks: dict[str, np.ndarray]) -> None:
    """Assigns w * mask to every masked variable."""
    variables = masked_variables(weights)
    for name, mask in masks.items():
        value = read_array(variables[name])
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
        if config.auto or not isinstance(config.target_sparsity, (int, float)):
            raise ConfigError(
                f"prune() needs a numeric sparsity with --sparsity {AUTO_SPARSITY}; use "
                "prune_model() to search it, or pass sparsity=S."
            )
        sparsity = float(config.target_sparsity)
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


# --------------------------------------------------------------------------- measures


def measure_sparsity(model: keras.Model, names: Sequence[str] | None = None) -> dict[str, float]:
    """Zero fraction of the named kernels (layer/attr; default all), read from the model."""
    by_name = {w.name: w for w in prunable_weights(model)}
    out: dict[str, float] = {}
    for name in by_name if names is None else names:
        v = read_array(by_name[name].variable)
        out[name] = float(1.0 - np.count_nonzero(v) / v.size)
    return out


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
        v = read_array(w.variable)
        bias_params = bias_zeros = None
        if prune_biases and w.bias is not None:
            b = read_array(w.bias)
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


def overall_sparsity(layers: Sequence[LayerPruning]) -> float:
    """Zeros over parameters of all the given kernels."""
    params = sum(layer.params for layer in layers)
    return sum(layer.zeros for layer in layers) / params if params else 0.0
