"""Structured (channel) pruning: whole output channels go and a smaller model is rebuilt.

Threshold pruning zeroes single weights; int8 kernels on the device still multiply them.
Removing an output channel of a Conv/Dense layer removes a filter there and an input
channel from every layer that reads it, so every kernel downstream does less work.

**Nested models.** `prune_structured` first inlines nested Functional and Sequential models
(a transfer-learning backbone called as one layer) into one flat graph (`pipeline.prune.flatten`):
their layers are then pruned like any other and reported as `outer/inner`. A nested model
that cannot be inlined (subclassed, shared) is left whole and listed in `skipped`.

**Channel groups.** The functional graph (a Sequential model built on `keras.Input` has one
too) is walked once. Each producer (Dense, Conv1D/2D/3D, SeparableConv, ConvTranspose)
opens a group of channels; channel-wise layers pass the group through: BatchNormalization,
DepthwiseConv (depth_multiplier 1: its channels follow its input), activations, dropout,
pooling, padding, cropping, up-sampling, resizing, scalar rescaling. Element-wise joins
(Add, Subtract, Multiply, Average, Maximum, Minimum; spatial axes may broadcast, as in a
squeeze-excite scale) tie the groups of their inputs into one group, which keeps the same
channels in every member (a residual stage of MobileNetV2 is one group over all its
projection convolutions). Concatenate on the channel axis lays its
inputs' groups side by side, each pruned on its own. Flatten into Dense keeps the Dense
rows of the kept channels at every spatial position.

A group is left whole ("pinned") when it reaches the model output (the output layer never
shrinks), comes from the model input, or is read by a layer this module does not handle
(Reshape, Permute, LayerNormalization, Softmax over channels, a nested model not flattened, a shared
layer, grouped or channels_first convolutions, depth_multiplier > 1, ...), or when its
producer ends in a softmax. Those layers are left whole and listed in `skipped`.

**Criterion.** A producer's filter norm is the l1 or l2 norm of the kernel slice that
produces one output channel, times |gamma| / sqrt(var + eps) of a BatchNormalization
directly after it (the scale the converter folds into the filter). Norms are divided by
their layer's mean norm, so that layers of different fan-in are comparable (raw norms grow
with k*k*C_in); a tied group averages its members' normalised norms. Global scope removes
the lowest R of all prunable channels by that score; layer scope removes round(R * width)
in every group; a threshold T removes every channel whose score is below T (scope does not
apply). Every group keeps at least min(width, `min_channels`) channels, its strongest.
With `channel_multiple` M > 1 each shrunk group then keeps the nearest multiple of M (at
least M; a group no wider than M stays whole), again its strongest channels: XNNPACK's int8
kernels work in tiles of 8-16 channels, so on bedside CPUs an aligned width often runs
faster than a narrower unaligned one (see bench/README.md).

**Equivalence.** The rebuilt model equals the original with the removed channels' reads
zeroed: the input rows (input axis of the kernel) of every consuming Conv/Dense, the
depthwise kernel of a consuming SeparableConv, and at every spatial position for Flatten
into Dense (`mask_removed_inputs`). Zeroing the producer instead would not be exact: the
bias and a following BatchNormalization's beta still emit a constant, which the consumer
turns into an offset that the pruned model does not have. Fine-tuning afterwards recovers
that offset, and anything else the removed channels carried.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import PruneConfig, PruneScope, StructuredConfig, StructuredCriterion
from pipeline.errors import ModelError
from pipeline.prune.flatten import Flattened, display_name, flatten

if TYPE_CHECKING:
    import keras

    from pipeline.data.splits import Splits
    from pipeline.models import OutputKind

Score = Callable[["keras.Model"], "float | None"]

PRODUCERS = (
    "Dense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
)
SEPARABLE = ("SeparableConv1D", "SeparableConv2D")
TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")
# layers that act on each channel alone and have no weights
CHANNELWISE = (
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "Resizing",
    "Rescaling",
)
JOINS = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_CHANNEL_COUPLING_ACTIVATIONS = ("softmax", "log_softmax")


def _classes(names: Sequence[str]) -> tuple[type, ...]:
    import keras

    return tuple(c for c in (getattr(keras.layers, n, None) for n in names) if c is not None)


# --------------------------------------------------------------------------- graph analysis


@dataclass(frozen=True)
class Channels:
    """The last axis of a tensor as a run of channel groups, side by side.

    `flat` > 0: the tensor is a Flatten of such channels over `flat` spatial positions
    (position-major, channel-minor, as channels_last Flatten lays them out).
    """

    groups: tuple[int, ...]
    flat: int = 0


@dataclass
class LayerRole:
    """How one layer takes part in channel pruning."""

    layer: Any = field(repr=False)
    role: str  # "producer", "depthwise", "batchnorm", "passthrough" or "other"
    inputs: tuple[Channels, ...]
    output: Channels | None  # None: a layer with several outputs ("other")


class ChannelGraph:
    """Channel groups of a model: their sizes, ties, producers and why some are pinned."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._size: list[int] = []
        self._pinned: dict[int, str] = {}
        self.roles: dict[str, LayerRole] = {}
        self.skipped: dict[str, str] = {}  # layer -> reason it is left whole
        self.batchnorm_after: dict[str, Any] = {}  # producer name -> its BatchNormalization
        self.joins: dict[int, list[str]] = {}  # group -> names of joins that tied it

    # union-find over groups
    def new_group(self, size: int, pinned: str | None = None) -> int:
        self._parent.append(len(self._parent))
        self._size.append(int(size))
        gid = len(self._parent) - 1
        if pinned:
            self._pinned[gid] = pinned
        return gid

    def find(self, gid: int) -> int:
        while self._parent[gid] != gid:
            self._parent[gid] = self._parent[self._parent[gid]]
            gid = self._parent[gid]
        return gid

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        self._parent[rb] = ra
        if rb in self._pinned and ra not in self._pinned:
            self._pinned[ra] = self._pinned[rb]
        self.joins.setdefault(ra, []).extend(self.joins.pop(rb, []))
        return ra

    def size(self, gid: int) -> int:
        return self._size[self.find(gid)]

    def pin(self, channels: Channels, reason: str) -> None:
        for gid in channels.groups:
            self._pinned.setdefault(self.find(gid), reason)

    def pinned(self, gid: int) -> str | None:
        return self._pinned.get(self.find(gid))

    def producers(self) -> dict[int, list[str]]:
        """Producer layer names of every group, by root group."""
        out: dict[int, list[str]] = {}
        for name, role in self.roles.items():
            if role.role == "producer" and role.output is not None:
                out.setdefault(self.find(role.output.groups[0]), []).append(name)
        return out

    def prunable(self) -> dict[int, list[str]]:
        """Producers of the groups that may lose channels."""
        return {g: names for g, names in self.producers().items() if self.pinned(g) is None}


def _functional(model: Any) -> Any:
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_nodes_by_depth"):
        raise ModelError(
            f"Structured pruning needs a Sequential model built on keras.Input or a "
            f"functional model; model '{model.name}' ({type(model).__name__}) has no layer "
            "graph. Rebuild it with the functional API, or leave out --structured-sparsity."
        )
    return graph


def _nodes(graph: Any) -> list[Any]:
    return [
        node
        for depth in sorted(graph._nodes_by_depth, reverse=True)
        for node in graph._nodes_by_depth[depth]
    ]


def _nodes_by_name(graph: Any) -> dict[str, Any]:
    """The call node of every layer, by layer name (layers called once)."""
    return {n.operation.name: n for n in _nodes(graph) if not n.is_input}


def _fresh_input(tensor: Any) -> Any:
    """A new keras.Input like a model's input tensor, with its name."""
    import keras

    return keras.Input(
        batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor._keras_history[0].name
    )


def _single(tensors: list[Any]) -> Any:
    """A tensor list as Keras wants it for a one-tensor model: the tensor itself."""
    return tensors[0] if len(tensors) == 1 else tensors


def _channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def _last_axis(axis: Any, rank: int) -> bool:
    return isinstance(axis, int) and axis in (-1, rank - 1)


def analyse(model: keras.Model) -> ChannelGraph:
    """Channel groups of `model` (see the module docstring).

    Raises:
        ModelError: the model has no functional graph.
    """
    graph = _functional(model)
    nodes = _nodes(graph)
    calls: dict[int, int] = {}
    for node in nodes:
        if not node.is_input and node.operation is not None:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    producer_kinds, depthwise_kinds = _classes(PRODUCERS), _classes(DEPTHWISE)
    passthrough_kinds, join_kinds = _classes(CHANNELWISE), _classes(JOINS)
    import keras

    g = ChannelGraph()
    tensors: dict[int, Channels] = {}
    produced_by: dict[int, str] = {}  # tensor id -> producer layer name

    def new_output(tensor: Any, pinned: str | None = None) -> Channels:
        size = tensor.shape[-1] if len(tensor.shape) else 1
        return Channels((g.new_group(size or 0, pinned),))

    def other(layer: Any, node: Any, ins: list[Channels], reason: str) -> None:
        for channels in ins:
            g.pin(channels, f"read by '{layer.name}': {reason}")
        g.skipped[layer.name] = reason
        outs = [new_output(t, f"produced by '{layer.name}': {reason}") for t in node.outputs]
        for t, channels in zip(node.outputs, outs, strict=True):
            tensors[id(t)] = channels
        g.roles[layer.name] = LayerRole(
            layer, "other", tuple(ins), outs[0] if len(outs) == 1 else None
        )

    for node in nodes:
        layer = node.operation
        if node.is_input:
            for t in node.outputs:
                tensors[id(t)] = new_output(t, "the model input")
            continue
        ins = [tensors[id(t)] for t in node.input_tensors]
        kind = type(layer).__name__
        if calls[id(layer)] > 1:
            other(layer, node, ins, f"shared layer ({calls[id(layer)]} calls)")
            continue
        if hasattr(layer, "_nodes_by_depth") or hasattr(layer, "_functional"):
            other(layer, node, ins, "nested model not flattened: its layers are left whole")
            continue
        if len(node.outputs) != 1:
            other(layer, node, ins, f"{kind} with {len(node.outputs)} outputs")
            continue
        joins = (*join_kinds, keras.layers.Concatenate)
        if len(ins) != 1 and not isinstance(layer, joins):
            other(layer, node, ins, f"{kind} called on {len(ins)} tensors")
            continue
        out_t = node.outputs[0]
        rank = len(out_t.shape)

        def passthrough(channels: Channels, role: str = "passthrough", node: Any = node) -> None:
            tensors[id(node.outputs[0])] = channels
            g.roles[node.operation.name] = LayerRole(
                node.operation, role, tuple(tensors[id(t)] for t in node.input_tensors), channels
            )

        if isinstance(layer, producer_kinds):
            (x,) = ins
            if not _channels_last(layer):
                other(layer, node, ins, f"{kind} with data_format channels_first")
                continue
            if int(getattr(layer, "groups", 1) or 1) != 1:
                other(layer, node, ins, f"grouped {kind} (groups={layer.groups})")
                continue
            if x.flat and not isinstance(layer, keras.layers.Dense):
                other(layer, node, ins, f"{kind} after Flatten")
                continue
            out = new_output(out_t)
            if _activation_name(layer) in _CHANNEL_COUPLING_ACTIVATIONS:
                g.pin(out, f"'{layer.name}' ends in {_activation_name(layer)} over its channels")
            tensors[id(out_t)] = out
            produced_by[id(out_t)] = layer.name
            g.roles[layer.name] = LayerRole(layer, "producer", (x,), out)
        elif isinstance(layer, depthwise_kinds):
            (x,) = ins
            if int(layer.depth_multiplier) != 1:
                other(layer, node, ins, f"{kind} with depth_multiplier {layer.depth_multiplier}")
            elif not _channels_last(layer) or x.flat:
                other(layer, node, ins, f"{kind} with data_format channels_first")
            else:
                passthrough(x, "depthwise")
        elif isinstance(layer, keras.layers.BatchNormalization):
            (x,) = ins
            if not _last_axis(layer.axis, rank) or x.flat:
                other(layer, node, ins, f"BatchNormalization over axis {layer.axis}")
                continue
            source = produced_by.get(id(node.input_tensors[0]))
            if source is not None:
                g.batchnorm_after[source] = layer
            passthrough(x, "batchnorm")
        elif isinstance(layer, passthrough_kinds):
            (x,) = ins
            if not _channels_last(layer):
                other(layer, node, ins, f"{kind} with data_format channels_first")
            elif _activation_name(layer) in _CHANNEL_COUPLING_ACTIVATIONS:
                other(layer, node, ins, f"{kind} {_activation_name(layer)} couples channels")
            elif isinstance(layer, keras.layers.Rescaling) and (
                np.ndim(layer.scale) or np.ndim(layer.offset)
            ):
                other(layer, node, ins, "Rescaling with per-channel values")
            elif x.flat and rank != 2:
                other(layer, node, ins, f"{kind} after Flatten")
            else:
                passthrough(x)
        elif isinstance(layer, keras.layers.Flatten):
            (x,) = ins
            in_shape = node.input_tensors[0].shape
            spatial = [int(d) if d is not None else None for d in in_shape[1:-1]]
            if not _channels_last(layer) or None in spatial or (x.flat and spatial):
                other(layer, node, ins, "Flatten of a channels_first or dynamic shape")
            else:
                passthrough(Channels(x.groups, x.flat or (math.prod(spatial) if spatial else 0)))
        elif isinstance(layer, join_kinds):
            # spatial axes may broadcast (a squeeze-excite scale), the channel axis not
            shapes = {(len(t.shape), t.shape[-1]) for t in node.input_tensors}
            layout = {(tuple(g.size(i) for i in c.groups), c.flat) for c in ins}
            if len(shapes) != 1 or len(layout) != 1:
                other(layer, node, ins, f"{kind} of differently shaped or laid out inputs")
                continue
            for channels in ins[1:]:
                for a, b in zip(ins[0].groups, channels.groups, strict=True):
                    root = g.union(a, b)
                    g.joins.setdefault(root, []).append(layer.name)
            passthrough(ins[0])
        elif isinstance(layer, keras.layers.Concatenate):
            if _last_axis(layer.axis, rank) and not any(c.flat for c in ins):
                passthrough(Channels(tuple(i for c in ins for i in c.groups)))
            elif not _last_axis(layer.axis, rank):
                # along another axis every input must keep the same channels
                layout = {(tuple(g.size(i) for i in c.groups), c.flat) for c in ins}
                if len(layout) != 1:
                    other(layer, node, ins, "Concatenate of differently laid out inputs")
                    continue
                for channels in ins[1:]:
                    for a, b in zip(ins[0].groups, channels.groups, strict=True):
                        g.union(a, b)
                passthrough(ins[0])
            else:
                other(layer, node, ins, "Concatenate of flattened inputs")
        else:
            other(layer, node, ins, f"{kind} is not handled by structured pruning")
    for t in graph.outputs:
        g.pin(tensors[id(t)], "reaches the model output (the output layer never shrinks)")
    return g


# --------------------------------------------------------------------------- selection


def _kernel(layer: Any) -> np.ndarray:
    """The kernel whose last output axis holds the layer's output channels."""
    if isinstance(layer, _classes(SEPARABLE)):
        return np.asarray(layer.pointwise_kernel.numpy())
    kernel = np.asarray(layer.kernel.numpy())
    if isinstance(layer, _classes(TRANSPOSED)):
        return np.swapaxes(kernel, -1, -2)  # stored (..., out, in)
    return kernel


def filter_norms(
    layer: Any, criterion: StructuredCriterion, batchnorm: Any | None = None
) -> np.ndarray:
    """Norm of each output channel's filter, scaled by a following BatchNormalization."""
    kernel = _kernel(layer)
    filters = np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1).astype(np.float64)
    if criterion is StructuredCriterion.L1:
        norms = np.abs(filters).sum(axis=1)
    else:
        norms = np.sqrt((filters**2).sum(axis=1))
    if batchnorm is not None:
        variance = np.asarray(batchnorm.moving_variance.numpy(), np.float64)
        gamma = (
            np.abs(np.asarray(batchnorm.gamma.numpy(), np.float64))
            if batchnorm.scale
            else np.ones_like(variance)
        )
        norms = norms * gamma / np.sqrt(variance + batchnorm.epsilon)
    return norms


def _input_rows_norm(layer: Any) -> np.ndarray:
    """l2 norm of the kernel weights that read each input unit of a Conv/Dense layer."""
    if isinstance(layer, _classes(SEPARABLE)):
        depthwise = np.asarray(layer.depthwise_kernel.numpy(), np.float64)  # (..., C, m)
        c_in, m = depthwise.shape[-2:]
        pointwise = np.asarray(layer.pointwise_kernel.numpy(), np.float64).reshape(c_in * m, -1)
        per_row = np.sqrt((pointwise**2).sum(axis=1)).reshape(c_in, m)
        taps = np.sqrt((np.moveaxis(depthwise, -2, 0).reshape(c_in, -1, m) ** 2).sum(axis=1))
        return np.asarray((per_row * taps).sum(axis=1))
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    axis = -1 if isinstance(layer, _classes(TRANSPOSED)) else -2 if kernel.ndim > 2 else 0
    rows = np.moveaxis(kernel, axis, 0).reshape(kernel.shape[axis], -1)
    return np.sqrt((rows**2).sum(axis=1))


def activation_scores(
    model: keras.Model, graph: ChannelGraph, x: np.ndarray
) -> dict[int, np.ndarray]:
    """Score of every channel of every prunable group from data: for each Conv/Dense that
    reads the channel, mean |value| it reads (over `x` and all positions) times the l2 norm
    of its kernel rows for that channel, summed over readers. A channel nobody reads with a
    kernel scores 0."""
    import keras

    prunable = graph.prunable()
    readers = [
        role
        for role in graph.roles.values()
        if role.role == "producer" and any(graph.find(g) in prunable for g in role.inputs[0].groups)
    ]
    scores = {gid: np.zeros(graph.size(gid)) for gid in prunable}
    if not readers:
        return scores
    functional = _functional(model)
    nodes = _nodes_by_name(functional)
    probe = keras.Model(
        _single(functional.inputs), [nodes[r.layer.name].input_tensors[0] for r in readers]
    )
    means = _mean_abs_last_axis(probe, x)
    for role, mean in zip(readers, means, strict=True):
        channels = role.inputs[0]
        width = sum(graph.size(g) for g in channels.groups)
        contribution = mean * _input_rows_norm(role.layer)
        if channels.flat:  # Flatten -> Dense: sum each channel's positions
            contribution = contribution.reshape(channels.flat, width).sum(axis=0)
        offset = 0
        for g in channels.groups:
            root, size = graph.find(g), graph.size(g)
            if root in scores:
                scores[root] += contribution[offset : offset + size]
            offset += size
    return scores


def _mean_abs_last_axis(probe: keras.Model, x: np.ndarray, batch: int = 32) -> list[np.ndarray]:
    """Mean |value| of every output of `probe` over `x` and all but the last axis, batch by
    batch (memory holds one batch of activations, not all of them)."""
    sums: list[np.ndarray] = []
    counts: list[int] = []
    for start in range(0, len(x), batch):
        outs = probe(x[start : start + batch], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        rows = [np.abs(np.asarray(o, np.float64)).reshape(-1, o.shape[-1]) for o in outs]
        if not sums:
            sums, counts = [np.zeros(r.shape[1]) for r in rows], [0] * len(rows)
        for k, r in enumerate(rows):
            sums[k] += r.sum(axis=0)
            counts[k] += r.shape[0]
    return [total / max(n, 1) for total, n in zip(sums, counts, strict=True)]


def channel_scores(
    model: keras.Model,
    graph: ChannelGraph,
    criterion: StructuredCriterion,
    x: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """Normalised score of every channel of every prunable group (mean 1 per producer, or
    per group for the activation criterion, which needs the inputs `x`)."""
    if criterion is StructuredCriterion.ACTIVATION:
        if x is None:
            raise ValueError("the activation criterion needs input samples")
        raw = activation_scores(model, graph, x)
        return {g: v / v.mean() if v.mean() > 0 else np.ones_like(v) for g, v in raw.items()}
    scores = {}
    for gid, names in graph.prunable().items():
        per_producer = []
        for name in names:
            norms = filter_norms(
                graph.roles[name].layer, criterion, graph.batchnorm_after.get(name)
            )
            mean = norms.mean()
            per_producer.append(norms / mean if mean > 0 else np.ones_like(norms))
        scores[gid] = np.mean(per_producer, axis=0)
    return scores


@dataclass(frozen=True)
class ChannelPlan:
    """The channels kept in every group (True = kept), by root group."""

    graph: ChannelGraph = field(repr=False)
    kept: dict[int, np.ndarray] = field(repr=False)  # sorted indices of kept channels
    scores: dict[int, np.ndarray] = field(repr=False)

    def indices(self, channels: Channels) -> np.ndarray | None:
        """Kept indices of a tensor's last axis; None when nothing is removed from it."""
        parts, offset, changed = [], 0, False
        for gid in channels.groups:
            root, size = self.graph.find(gid), self.graph.size(gid)
            kept = self.kept.get(root)
            if kept is None or len(kept) == size:
                kept = np.arange(size)
            else:
                changed = True
            parts.append(offset + kept)
            offset += size
        if not changed:
            return None
        index = np.concatenate(parts)
        if channels.flat:
            index = (np.arange(channels.flat)[:, None] * offset + index[None, :]).ravel()
        return index

    def width(self, gid: int) -> int:
        kept = self.kept.get(self.graph.find(gid))
        return self.graph.size(gid) if kept is None else len(kept)

    @property
    def removed(self) -> int:
        return sum(self.graph.size(g) - len(k) for g, k in self.kept.items())

    @property
    def prunable_channels(self) -> int:
        return sum(self.graph.size(g) for g in self.scores)


def select_channels(
    model: keras.Model, config: StructuredConfig, x: np.ndarray | None = None
) -> ChannelPlan:
    """The channels `config` keeps in every prunable group of `model`; nothing is changed.
    `x`: training inputs, needed by the activation criterion.

    Raises:
        ModelError: the model has no functional graph.
    """
    graph = analyse(model)
    scores = channel_scores(model, graph, config.criterion, x)
    floor = {gid: min(len(s), config.min_channels) for gid, s in scores.items()}
    remove: dict[int, set[int]] = {gid: set() for gid in scores}
    if config.threshold is not None:
        for gid, s in scores.items():
            below = [int(c) for c in np.argsort(s, kind="stable") if s[c] < config.threshold]
            remove[gid] = set(below[: len(s) - floor[gid]])
    elif config.scope is PruneScope.LAYER:
        for gid, s in scores.items():
            count = min(int(round(float(config.sparsity) * len(s))), len(s) - floor[gid])
            remove[gid] = {int(c) for c in np.argsort(s, kind="stable")[:count]}
    else:
        total = sum(len(s) for s in scores.values())
        target = int(round(float(config.sparsity) * total))
        ranked = sorted(
            (float(s[c]), gid, int(c)) for gid, s in scores.items() for c in range(len(s))
        )
        for _, gid, c in ranked:
            if sum(len(r) for r in remove.values()) >= target:
                break
            if len(scores[gid]) - len(remove[gid]) > floor[gid]:
                remove[gid].add(c)
    if config.channel_multiple > 1:
        for gid, s in scores.items():
            width = _aligned(len(s) - len(remove[gid]), len(s), floor[gid], config.channel_multiple)
            remove[gid] = {int(c) for c in np.argsort(s, kind="stable")[: len(s) - width]}
    kept = {
        gid: np.array([c for c in range(len(s)) if c not in remove[gid]], dtype=np.int64)
        for gid, s in scores.items()
    }
    return ChannelPlan(graph, kept, scores)


def _aligned(kept: int, size: int, floor: int, multiple: int) -> int:
    """`kept` moved to the nearest multiple of `multiple` (at least one multiple and the
    floor), or `size` when that is not below it."""
    if kept >= size:
        return size
    width = max(multiple, int(math.floor(kept / multiple + 0.5)) * multiple)
    if width < floor:
        width = math.ceil(floor / multiple) * multiple
    return min(width, size)


# --------------------------------------------------------------------------- rebuild


def _slice(array: np.ndarray, axis: int, index: np.ndarray | None) -> np.ndarray:
    return array if index is None else np.take(array, index, axis=axis)


def _sliced_weights(role: LayerRole, plan: ChannelPlan) -> dict[str, np.ndarray]:
    """The layer's weights (by variable name) with removed channels cut out."""
    import keras

    layer = role.layer
    values = {w.name: np.asarray(w.numpy()) for w in layer.weights}
    if role.role == "other" or role.output is None:
        return values
    out_index = plan.indices(role.output)
    if role.role in ("depthwise", "batchnorm"):
        axis = {"kernel": -2}  # depthwise kernel (..., C, 1); everything else is (C,)
        return {k: _slice(v, axis.get(k, 0), out_index) for k, v in values.items()}
    if role.role != "producer":
        return values
    in_index = plan.indices(role.inputs[0])
    out = dict(values)
    if "bias" in out:
        out["bias"] = _slice(out["bias"], 0, out_index)
    if isinstance(layer, _classes(SEPARABLE)):
        m = int(layer.depth_multiplier)
        rows = None if in_index is None else (in_index[:, None] * m + np.arange(m)).ravel()
        out["depthwise_kernel"] = _slice(out["depthwise_kernel"], -2, in_index)
        pointwise = _slice(out["pointwise_kernel"], -2, rows)
        out["pointwise_kernel"] = _slice(pointwise, -1, out_index)
    elif isinstance(layer, _classes(TRANSPOSED)):
        out["kernel"] = _slice(_slice(out["kernel"], -1, in_index), -2, out_index)
    elif isinstance(layer, keras.layers.Dense):
        out["kernel"] = _slice(_slice(out["kernel"], 0, in_index), -1, out_index)
    else:
        out["kernel"] = _slice(_slice(out["kernel"], -2, in_index), -1, out_index)
    return out


def rebuild(model: keras.Model, plan: ChannelPlan) -> keras.Model:
    """A new model with the plan's channels removed, holding the original's other weights.

    Layer names, the model class (Sequential or functional) and the compile settings are
    kept; only the producers' `filters`/`units` change.
    """
    import keras

    widths = {
        name: plan.width(role.output.groups[0])
        for name, role in plan.graph.roles.items()
        if role.role == "producer" and role.output is not None
    }

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        width = widths.get(layer.name)
        if width is not None:
            config["units" if "units" in config else "filters"] = width
        return type(layer).from_config(config)

    if isinstance(model, keras.Sequential):
        new = keras.models.clone_model(model, clone_function=clone)
    else:
        inputs = keras.tree.map_structure(_fresh_input, model.input)  # same names, structure
        new = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
    for name, role in plan.graph.roles.items():
        if not role.layer.weights:
            continue
        target = new.get_layer(name)
        if role.role == "other":  # left whole (a nested model's names repeat)
            target.set_weights(role.layer.get_weights())
            continue
        values = _sliced_weights(role, plan)
        target.set_weights([values[w.name] for w in role.layer.weights])
    return new


def mask_removed_inputs(model: keras.Model, plan: ChannelPlan) -> keras.Model:
    """A copy of `model` whose consumers read zeros from every removed channel: the
    reference the rebuilt model equals exactly (see the module docstring)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name, role in plan.graph.roles.items():
        if role.role != "producer":
            continue
        index = plan.indices(role.inputs[0])
        if index is None:
            continue
        layer = copy.get_layer(name)
        if isinstance(layer, _classes(SEPARABLE)):
            variable, axis = layer.depthwise_kernel, -2
        elif isinstance(layer, _classes(TRANSPOSED)):
            variable, axis = layer.kernel, -1
        elif isinstance(layer, keras.layers.Dense):
            variable, axis = layer.kernel, 0
        else:
            variable, axis = layer.kernel, -2
        value = np.asarray(variable.numpy())
        keep = np.zeros(value.shape[axis], bool)
        keep[index] = True
        shape = [1] * value.ndim
        shape[axis] = -1
        variable.assign(value * keep.reshape(shape).astype(value.dtype))
    return copy


# --------------------------------------------------------------------------- residual blocks


@dataclass(frozen=True)
class ResidualBranch:
    """A chain of single-input layers from a tensor `skip` to an Add that sums the chain's
    output with `skip` again: removing the chain leaves Add(skip) = skip."""

    add: str  # the Add layer's name
    layers: tuple[str, ...]  # the chain, input side first
    skip_index: int  # which of the Add's two inputs is the skip


def residual_branches(model: keras.Model) -> list[ResidualBranch]:
    """Every residual branch of `model` that can be removed whole: a chain of single-input,
    single-output layers, called once, each read only by the next, starting at the tensor
    the Add also reads and ending in a BatchNormalization or a Conv/Dense (so that zeroing
    that layer zeroes the branch). Add layers of more than two inputs are not considered.

    Raises:
        ModelError: the model has no functional graph.
    """
    import keras

    graph = _functional(model)
    nodes = _nodes(graph)
    made_by: dict[int, Any] = {}
    readers: dict[int, int] = {}
    calls: dict[int, int] = {}
    for node in nodes:
        for t in node.outputs:
            made_by[id(t)] = node
        if node.is_input or node.operation is None:
            continue
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for t in node.input_tensors:
            readers[id(t)] = readers.get(id(t), 0) + 1
    for t in graph.outputs:
        readers[id(t)] = readers.get(id(t), 0) + 1
    last_kinds = (*_classes(PRODUCERS), keras.layers.BatchNormalization)
    found = []
    for node in nodes:
        layer = node.operation
        if not isinstance(layer, keras.layers.Add) or len(node.input_tensors) != 2:
            continue
        for skip_index in (0, 1):
            skip, out = node.input_tensors[skip_index], node.input_tensors[1 - skip_index]
            chain: list[Any] = []
            tensor = out
            while id(tensor) != id(skip) and len(chain) <= 64:
                producer = made_by.get(id(tensor))
                if (
                    producer is None
                    or producer.is_input
                    or len(producer.input_tensors) != 1
                    or len(producer.outputs) != 1
                    or readers.get(id(tensor), 0) != 1
                    or calls.get(id(producer.operation), 0) != 1
                ):
                    break
                chain.append(producer.operation)
                tensor = producer.input_tensors[0]
            if id(tensor) == id(skip) and chain and isinstance(chain[0], last_kinds):
                found.append(
                    ResidualBranch(layer.name, tuple(c.name for c in reversed(chain)), skip_index)
                )
                break
    return found


def branch_scores(
    model: keras.Model, branches: Sequence[ResidualBranch], x: np.ndarray
) -> list[float]:
    """How much each branch adds: mean over `x` of ||branch output|| / ||skip input||."""
    import keras

    if not branches:
        return []
    graph = _functional(model)
    by_name = _nodes_by_name(graph)
    outputs = []
    for b in branches:
        ins = by_name[b.add].input_tensors
        outputs += [ins[b.skip_index], ins[1 - b.skip_index]]
    probe = keras.Model(_single(graph.inputs), outputs)
    ratios = np.zeros(len(branches))
    for start in range(0, len(x), 32):
        values = probe(x[start : start + 32], training=False)
        for i in range(len(branches)):
            skip, out = (
                np.asarray(v, np.float64).reshape(v.shape[0], -1) for v in values[2 * i : 2 * i + 2]
            )
            norms = np.linalg.norm(out, axis=1) / np.maximum(np.linalg.norm(skip, axis=1), 1e-12)
            ratios[i] += norms.sum()
    return [float(r / len(x)) for r in ratios]


def zero_branches(model: keras.Model, branches: Sequence[ResidualBranch]) -> keras.Model:
    """A copy of `model` whose given branches output zeros: the reference `drop_branches`
    equals exactly (a BatchNormalization with gamma = beta = 0, a Conv/Dense with a zero
    kernel and bias, outputs 0)."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for b in branches:
        layer = copy.get_layer(b.layers[-1])
        for name in ("gamma", "beta", "kernel", "bias", "pointwise_kernel"):
            variable = getattr(layer, name, None)
            if variable is not None and hasattr(variable, "assign"):
                variable.assign(np.zeros(variable.shape, np.asarray(variable.numpy()).dtype))
    return copy


def drop_branches(model: keras.Model, branches: Sequence[ResidualBranch]) -> keras.Model:
    """A new functional model without the given branches: their Add passes its skip input
    through. Other layers keep their names, configs and weights."""
    import keras

    graph = _functional(model)
    gone = {name for b in branches for name in b.layers}
    passthrough = {b.add: b.skip_index for b in branches}
    inputs = [_fresh_input(t) for t in graph.inputs]
    tensors: dict[int, Any] = {id(o): n for o, n in zip(graph.inputs, inputs, strict=True)}
    clones: dict[str, Any] = {}
    for node in _nodes(graph):
        layer = node.operation
        if node.is_input or layer is None or layer.name in gone:
            continue
        if layer.name in passthrough:
            skip = node.input_tensors[passthrough[layer.name]]
            tensors[id(node.outputs[0])] = tensors[id(skip)]
            continue
        if layer.name not in clones:
            clones[layer.name] = type(layer).from_config(layer.get_config())
        args, kwargs = node.arguments.fill_in(tensors)
        out = clones[layer.name](*args, **kwargs)
        for old, new in zip(node.outputs, keras.tree.flatten(out), strict=True):
            tensors[id(old)] = new
    outputs = [tensors[id(t)] for t in graph.outputs]
    new = keras.Model(_single(inputs), _single(outputs), name=model.name)
    for name, clone in clones.items():
        clone.set_weights(model.get_layer(name).get_weights())
    return new


# --------------------------------------------------------------------------- the stage


@dataclass(frozen=True)
class LayerChannels:
    """One MAC-counted layer before and after."""

    name: str
    kind: str
    channels_before: int | None
    channels_after: int | None
    in_channels_before: int | None
    in_channels_after: int | None
    macs_before: int | None
    macs_after: int | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StructuredOutcome:
    """The structured step's result: the rebuilt model and what happened to it."""

    config: StructuredConfig
    model: Any = field(repr=False)  # keras.Model, rebuilt and fine-tuned
    macs_before: int | None
    macs_after: int | None
    params_before: int
    params_after: int
    prunable_channels: int
    removed_channels: int
    layers: tuple[LayerChannels, ...]
    skipped: tuple[dict[str, str], ...]
    groups: tuple[dict[str, Any], ...]
    rebuild_max_abs_diff: float | None
    val_auroc: dict[str, float | None]
    finetune: dict[str, Any] | None
    dropped_blocks: tuple[dict[str, Any], ...] = ()
    flattened: tuple[str, ...] = ()  # nested models inlined first (pipeline.prune.flatten)

    @property
    def achieved_sparsity(self) -> float:
        return self.removed_channels / self.prunable_channels if self.prunable_channels else 0.0

    def to_json(self) -> dict[str, Any]:
        """The report's `pruning.structured` section."""
        cfg = self.config
        ratio = self.macs_before / self.macs_after if self.macs_before and self.macs_after else None
        return {
            "method": "residual_branches+channel_norm"
            if cfg.drop_blocks and cfg.channels
            else "residual_branches"
            if cfg.drop_blocks
            else "channel_norm",
            "criterion": cfg.criterion.value,
            "normalisation": (
                "sum over readers of mean |input| (up to 256 training inputs) times the l2 "
                "norm of the reader's kernel rows, divided by the group's mean score"
                if cfg.criterion is StructuredCriterion.ACTIVATION
                else "filter norm (times |gamma|/sqrt(var+eps) of a BatchNormalization "
                "right after) divided by the mean filter norm of its layer"
            ),
            "scope": None if cfg.threshold is not None else cfg.scope.value,
            "drop_blocks": cfg.drop_blocks,
            "dropped_blocks": list(self.dropped_blocks),
            "block_score": "mean ||branch output|| / ||skip input|| over up to 256 training "
            "inputs; the lowest go",
            "target_sparsity": cfg.sparsity,
            "threshold": cfg.threshold,
            "min_channels": cfg.min_channels,
            "channel_multiple": cfg.channel_multiple,
            "prunable_channels": self.prunable_channels,
            "removed_channels": self.removed_channels,
            "achieved_sparsity": self.achieved_sparsity,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
            "mac_reduction": ratio,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "rebuild_max_abs_diff": self.rebuild_max_abs_diff,
            "validation_auroc": dict(self.val_auroc),
            "finetune_epochs": cfg.finetune_epochs if self.finetune else 0,
            "finetune": self.finetune,
            "groups": list(self.groups),
            "layers": [layer.to_json() for layer in self.layers],
            "skipped": list(self.skipped),
            "flattened": list(self.flattened),
        }


def _layer_table(before: keras.Model, after: keras.Model) -> tuple[LayerChannels, ...]:
    from pipeline.prune.macs import count_macs

    new = {m.name: m for m in count_macs(after)}
    out = []
    for old in count_macs(before):
        cur = new.get(old.name)  # None: removed with its residual branch
        out.append(
            LayerChannels(
                old.name,
                old.kind,
                old.out_channels,
                cur.out_channels if cur else 0,
                old.in_channels,
                cur.in_channels if cur else 0,
                old.macs,
                cur.macs if cur else 0,
            )
        )
    return tuple(out)


def _skipped(plan: ChannelPlan | None, flat: Flattened | None = None) -> tuple[dict[str, str], ...]:
    """Layers left whole and why: nested models not flattened first, by their reason."""
    out = list(flat.skipped) if flat else []
    if plan is None:
        return tuple(out)
    graph, seen = plan.graph, {entry["layer"] for entry in out}
    out += [
        {"layer": display_name(name), "reason": reason}
        for name, reason in graph.skipped.items()
        if display_name(name) not in seen
    ]
    for gid, names in graph.producers().items():
        reason = graph.pinned(gid)
        if reason is not None:
            out += [
                {"layer": display_name(name), "reason": f"channels kept: {display_name(reason)}"}
                for name in names
            ]
    return tuple(out)


def _groups(plan: ChannelPlan) -> tuple[dict[str, Any], ...]:
    graph = plan.graph
    out = []
    for gid, names in graph.prunable().items():
        out.append(
            {
                "producers": [display_name(name) for name in names],
                "tied_by": sorted({display_name(n) for n in graph.joins.get(gid, [])}),
                "channels_before": graph.size(gid),
                "channels_after": plan.width(gid),
            }
        )
    return tuple(out)


def _max_abs_diff(a: keras.Model, b: keras.Model, x: np.ndarray) -> float:
    ya = np.asarray(a.predict(x, verbose=0, batch_size=256))
    yb = np.asarray(b.predict(x, verbose=0, batch_size=256))
    return float(np.max(np.abs(ya - yb))) if ya.size else 0.0


def prune_structured(
    model: keras.Model,
    splits: Splits,
    kind: OutputKind,
    config: StructuredConfig,
    *,
    score: Score,
    seed: int = 0,
) -> StructuredOutcome:
    """The structured step: drop residual branches, pick channels, rebuild a smaller model,
    fine-tune it.

    `model` is not changed; the outcome holds the new model, built from `model` with its
    nested models inlined (`pipeline.prune.flatten`). Before fine-tuning the rebuilt
    model is checked against its reference (`zero_branches`, then `mask_removed_inputs`) on
    the validation inputs; the largest difference is reported.

    Args:
        model: the trained model.
        splits: train split for scoring branches and fine-tuning, val split for validation.
        kind: the model's output kind (the fine-tuning loss when the model has none).
        config: branches to drop, sparsity or threshold, criterion, scope, minimum width,
            and the fine-tuning recipe (epochs, augmentation, learning-rate schedule,
            distillation from `model`).
        score: validation AUROC of a model (None when undefined).
        seed: seed of fine-tuning.

    Raises:
        ModelError: the model has no functional graph (a subclassed model), or fewer
            removable residual branches than `config.drop_blocks`.
    """
    from pipeline.prune import magnitude as pruning
    from pipeline.prune.macs import total_macs

    original = model
    flat = flatten(model)  # nested backbones become layers of one graph
    model = flat.model
    x_val = splits.model_inputs("val")[:256]
    x_train = splits.model_inputs("train")[:256]  # scores branches and activations
    if config.finetune_epochs > 0:  # fail before the work, not after it
        pruning.check_augmentable(x_train, config.augment)
    source, diffs, dropped = model, [], []
    if config.drop_blocks:
        source, dropped, reference = _drop_blocks(model, x_train, config)
        diffs.append(_max_abs_diff(source, reference, x_val))
    plan = None
    pruned = source
    if config.channels:
        plan = select_channels(source, config, x_train)
        pruned = rebuild(source, plan)
        diffs.append(_max_abs_diff(pruned, mask_removed_inputs(source, plan), x_val))
    auroc = {"original": score(original), "pruned": score(pruned), "finetuned": None}
    tuning = None
    if config.finetune_epochs > 0:
        empty = pruning.PruningResult(None, {}, None, {})
        result = pruning.finetune(
            pruned,
            splits,
            kind,
            [],
            empty,
            PruneConfig(target_sparsity=0.0, finetune_epochs=config.finetune_epochs),
            seed=seed,
            augment=config.augment,
            lr_schedule=config.lr_schedule,
            teacher=model if config.distill > 0 else None,
            distill=config.distill,
        )
        tuning = {
            "epochs": result.epochs,
            "steps": result.steps,
            "batch_size": pruning.FINETUNE_BATCH_SIZE,
            "augment": list(config.augment),
            "lr_schedule": config.lr_schedule.value,
            "distill": config.distill,
            "history": result.history,
        }
        auroc["finetuned"] = score(pruned)
    return StructuredOutcome(
        config=config,
        model=pruned,
        macs_before=total_macs(original),
        macs_after=total_macs(pruned),
        params_before=int(original.count_params()),
        params_after=int(pruned.count_params()),
        prunable_channels=plan.prunable_channels if plan else 0,
        removed_channels=plan.removed if plan else 0,
        layers=_layer_table(original, pruned),
        skipped=_skipped(plan, flat),
        groups=_groups(plan) if plan else (),
        rebuild_max_abs_diff=max(diffs),
        val_auroc=auroc,
        finetune=tuning,
        dropped_blocks=tuple(dropped),
        flattened=flat.flattened,
    )


def _drop_blocks(
    model: keras.Model, x: np.ndarray, config: StructuredConfig
) -> tuple[keras.Model, list[dict[str, Any]], keras.Model]:
    """The model without its `config.drop_blocks` weakest residual branches, what was
    dropped, and the reference it must equal (those branches zeroed)."""
    branches = residual_branches(model)
    if len(branches) < config.drop_blocks:
        raise ModelError(
            f"--drop-blocks {config.drop_blocks} asks for more residual branches than model "
            f"'{model.name}' has: {len(branches)} can be removed (a chain of single-input "
            "layers from a tensor to an Add of it, ending in a BatchNormalization or "
            "Conv/Dense). "
            + (
                f"Pass --drop-blocks {len(branches)} or fewer."
                if branches
                else "Leave out --drop-blocks for this model."
            )
        )
    scores = branch_scores(model, branches, x)
    chosen = sorted(np.argsort(scores, kind="stable")[: config.drop_blocks].tolist())
    picked = [branches[i] for i in chosen]
    dropped = [
        {
            "add": display_name(branches[i].add),
            "layers": [display_name(name) for name in branches[i].layers],
            "score": scores[i],
        }
        for i in chosen
    ]
    return drop_branches(model, picked), dropped, zero_branches(model, picked)
