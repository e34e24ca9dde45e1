"""Channel groups of a model: which channels may go, and which must go together.

The functional graph (a Sequential model built on `keras.Input` has one too) is walked
once. Each producer (Dense, Conv1D/2D/3D, SeparableConv, ConvTranspose) opens a group of
channels; channel-wise layers pass the group through: BatchNormalization, DepthwiseConv
(depth_multiplier 1: its channels follow its input), activations, dropout, pooling, padding,
cropping, up-sampling, resizing, scalar rescaling. Element-wise joins (Add, Subtract,
Multiply, Average, Maximum, Minimum; spatial axes may broadcast, as in a squeeze-excite
scale) tie the groups of their inputs into one group, which keeps the same channels in every
member (a residual stage of MobileNetV2 is one group over all its projection convolutions).
Concatenate on the channel axis lays its inputs' groups side by side, each pruned on its
own. Flatten into Dense keeps the Dense rows of the kept channels at every spatial position.

A group is left whole ("pinned") when it reaches the model output (the output layer never
shrinks), comes from the model input, or is read by a layer this module does not handle
(Reshape, Permute, LayerNormalization, Softmax over channels, a nested model not flattened,
a shared layer, grouped or channels_first convolutions, depth_multiplier > 1, ...), or when
its producer ends in a softmax. Those layers are left whole and listed in `skipped`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.models.graph import call_nodes
from pipeline.prune.structured.nodes import (
    DEPTHWISE,
    PRODUCERS,
    functional,
    layer_classes,
)

if TYPE_CHECKING:
    import keras

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


def _channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def _activation_name(layer: Any) -> str:
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def _last_axis(axis: Any, rank: int) -> bool:
    return isinstance(axis, int) and axis in (-1, rank - 1)


class _Walk:
    """One walk over a functional graph's nodes, filling a ChannelGraph."""

    def __init__(self, all_nodes: list[Any]) -> None:
        import keras

        self.g = ChannelGraph()
        self.tensors: dict[int, Channels] = {}
        self.produced_by: dict[int, str] = {}  # tensor id -> producer layer name
        self.calls: dict[int, int] = {}
        for node in all_nodes:
            if not node.is_input and node.operation is not None:
                self.calls[id(node.operation)] = self.calls.get(id(node.operation), 0) + 1
        self.producer_kinds = layer_classes(PRODUCERS)
        self.depthwise_kinds = layer_classes(DEPTHWISE)
        self.passthrough_kinds = layer_classes(CHANNELWISE)
        self.join_kinds = layer_classes(JOINS)
        self.keras = keras

    def new_output(self, tensor: Any, pinned: str | None = None) -> Channels:
        size = tensor.shape[-1] if len(tensor.shape) else 1
        return Channels((self.g.new_group(size or 0, pinned),))

    def other(self, node: Any, ins: list[Channels], reason: str) -> None:
        """The layer of `node` is left whole: its inputs and outputs are pinned."""
        layer = node.operation
        for channels in ins:
            self.g.pin(channels, f"read by '{layer.name}': {reason}")
        self.g.skipped[layer.name] = reason
        outs = [self.new_output(t, f"produced by '{layer.name}': {reason}") for t in node.outputs]
        for t, channels in zip(node.outputs, outs, strict=True):
            self.tensors[id(t)] = channels
        self.g.roles[layer.name] = LayerRole(
            layer, "other", tuple(ins), outs[0] if len(outs) == 1 else None
        )

    def passthrough(self, node: Any, channels: Channels, role: str = "passthrough") -> None:
        """The output of `node` carries `channels`."""
        self.tensors[id(node.outputs[0])] = channels
        self.g.roles[node.operation.name] = LayerRole(
            node.operation, role, tuple(self.tensors[id(t)] for t in node.input_tensors), channels
        )

    def visit(self, node: Any) -> None:
        layer = node.operation
        if node.is_input:
            for t in node.outputs:
                self.tensors[id(t)] = self.new_output(t, "the model input")
            return
        ins = [self.tensors[id(t)] for t in node.input_tensors]
        reason = self._unhandled_call(node, ins)
        if reason is not None:
            self.other(node, ins, reason)
        elif isinstance(layer, self.producer_kinds):
            self.producer(node, ins[0])
        elif isinstance(layer, self.depthwise_kinds):
            self.depthwise(node, ins[0])
        elif isinstance(layer, self.keras.layers.BatchNormalization):
            self.batchnorm(node, ins[0])
        elif isinstance(layer, self.passthrough_kinds):
            self.channelwise(node, ins[0])
        elif isinstance(layer, self.keras.layers.Flatten):
            self.flatten(node, ins[0])
        elif isinstance(layer, self.join_kinds):
            self.join(node, ins)
        elif isinstance(layer, self.keras.layers.Concatenate):
            self.concatenate(node, ins)
        else:
            self.other(node, ins, f"{type(layer).__name__} is not handled by structured pruning")

    def _unhandled_call(self, node: Any, ins: list[Channels]) -> str | None:
        """Why the call of `node` is left whole whatever its layer, or None."""
        layer, kind = node.operation, type(node.operation).__name__
        if self.calls[id(layer)] > 1:
            return f"shared layer ({self.calls[id(layer)]} calls)"
        if hasattr(layer, "_nodes_by_depth") or hasattr(layer, "_functional"):
            return "nested model not flattened: its layers are left whole"
        if len(node.outputs) != 1:
            return f"{kind} with {len(node.outputs)} outputs"
        joins = (*self.join_kinds, self.keras.layers.Concatenate)
        if len(ins) != 1 and not isinstance(layer, joins):
            return f"{kind} called on {len(ins)} tensors"
        return None

    def producer(self, node: Any, x: Channels) -> None:
        layer, kind, out_t = node.operation, type(node.operation).__name__, node.outputs[0]
        if not _channels_last(layer):
            self.other(node, [x], f"{kind} with data_format channels_first")
            return
        if int(getattr(layer, "groups", 1) or 1) != 1:
            self.other(node, [x], f"grouped {kind} (groups={layer.groups})")
            return
        if x.flat and not isinstance(layer, self.keras.layers.Dense):
            self.other(node, [x], f"{kind} after Flatten")
            return
        out = self.new_output(out_t)
        activation = _activation_name(layer)
        if activation in _CHANNEL_COUPLING_ACTIVATIONS:
            self.g.pin(out, f"'{layer.name}' ends in {activation} over its channels")
        self.tensors[id(out_t)] = out
        self.produced_by[id(out_t)] = layer.name
        self.g.roles[layer.name] = LayerRole(layer, "producer", (x,), out)

    def depthwise(self, node: Any, x: Channels) -> None:
        layer, kind = node.operation, type(node.operation).__name__
        if int(layer.depth_multiplier) != 1:
            self.other(node, [x], f"{kind} with depth_multiplier {layer.depth_multiplier}")
        elif not _channels_last(layer) or x.flat:
            self.other(node, [x], f"{kind} with data_format channels_first")
        else:
            self.passthrough(node, x, "depthwise")

    def batchnorm(self, node: Any, x: Channels) -> None:
        layer, rank = node.operation, len(node.outputs[0].shape)
        if not _last_axis(layer.axis, rank) or x.flat:
            self.other(node, [x], f"BatchNormalization over axis {layer.axis}")
            return
        source = self.produced_by.get(id(node.input_tensors[0]))
        if source is not None:
            self.g.batchnorm_after[source] = layer
        self.passthrough(node, x, "batchnorm")

    def channelwise(self, node: Any, x: Channels) -> None:
        layer, kind = node.operation, type(node.operation).__name__
        if not _channels_last(layer):
            self.other(node, [x], f"{kind} with data_format channels_first")
        elif _activation_name(layer) in _CHANNEL_COUPLING_ACTIVATIONS:
            self.other(node, [x], f"{kind} {_activation_name(layer)} couples channels")
        elif isinstance(layer, self.keras.layers.Rescaling) and (
            np.ndim(layer.scale) or np.ndim(layer.offset)
        ):
            self.other(node, [x], "Rescaling with per-channel values")
        elif x.flat and len(node.outputs[0].shape) != 2:
            self.other(node, [x], f"{kind} after Flatten")
        else:
            self.passthrough(node, x)

    def flatten(self, node: Any, x: Channels) -> None:
        in_shape = node.input_tensors[0].shape
        spatial = [int(d) if d is not None else None for d in in_shape[1:-1]]
        if not _channels_last(node.operation) or None in spatial or (x.flat and spatial):
            self.other(node, [x], "Flatten of a channels_first or dynamic shape")
            return
        positions = [d for d in spatial if d is not None]
        self.passthrough(
            node, Channels(x.groups, x.flat or (math.prod(positions) if positions else 0))
        )

    def _layout(self, ins: list[Channels]) -> set[tuple[tuple[int, ...], int]]:
        return {(tuple(self.g.size(i) for i in c.groups), c.flat) for c in ins}

    def join(self, node: Any, ins: list[Channels]) -> None:
        # spatial axes may broadcast (a squeeze-excite scale), the channel axis not
        shapes = {(len(t.shape), t.shape[-1]) for t in node.input_tensors}
        if len(shapes) != 1 or len(self._layout(ins)) != 1:
            kind = type(node.operation).__name__
            self.other(node, ins, f"{kind} of differently shaped or laid out inputs")
            return
        for channels in ins[1:]:
            for a, b in zip(ins[0].groups, channels.groups, strict=True):
                root = self.g.union(a, b)
                self.g.joins.setdefault(root, []).append(node.operation.name)
        self.passthrough(node, ins[0])

    def concatenate(self, node: Any, ins: list[Channels]) -> None:
        on_channels = _last_axis(node.operation.axis, len(node.outputs[0].shape))
        if on_channels and not any(c.flat for c in ins):
            self.passthrough(node, Channels(tuple(i for c in ins for i in c.groups)))
        elif on_channels:
            self.other(node, ins, "Concatenate of flattened inputs")
        elif len(self._layout(ins)) != 1:
            self.other(node, ins, "Concatenate of differently laid out inputs")
        else:  # along another axis every input must keep the same channels
            for channels in ins[1:]:
                for a, b in zip(ins[0].groups, channels.groups, strict=True):
                    self.g.union(a, b)
            self.passthrough(node, ins[0])


def analyse(model: keras.Model) -> ChannelGraph:
    """Channel groups of `model` (see the module docstring).

    Raises:
        ModelError: the model has no functional graph.
    """
    graph = functional(model)
    all_nodes = call_nodes(graph)
    walk = _Walk(all_nodes)
    for node in all_nodes:
        walk.visit(node)
    for t in graph.outputs:
        walk.g.pin(walk.tensors[id(t)], "reaches the model output (the output layer never shrinks)")
    return walk.g
