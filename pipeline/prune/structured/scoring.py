"""Channel scores: how much each prunable channel is worth keeping.

A producer's filter norm is the l1 or l2 norm of the kernel slice that produces one output
channel, times |gamma| / sqrt(var + eps) of a BatchNormalization directly after it (the
scale the converter folds into the filter). Norms are divided by their layer's mean norm,
so that layers of different fan-in are comparable (raw norms grow with k*k*C_in); a tied
group averages its members' normalised norms. The activation criterion scores a channel by
what its readers make of it on training inputs (`activation_scores`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config import StructuredCriterion
from pipeline.prune.structured.graph import ChannelGraph
from pipeline.prune.structured.nodes import (
    SEPARABLE,
    TRANSPOSED,
    functional,
    is_kind,
    nodes_by_name,
    single,
)

if TYPE_CHECKING:
    import keras


def _kernel(layer: Any) -> np.ndarray:
    """The kernel whose last output axis holds the layer's output channels."""
    if is_kind(layer, SEPARABLE):
        return np.asarray(layer.pointwise_kernel.numpy())
    kernel = np.asarray(layer.kernel.numpy())
    if is_kind(layer, TRANSPOSED):
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
    if is_kind(layer, SEPARABLE):
        depthwise = np.asarray(layer.depthwise_kernel.numpy(), np.float64)  # (..., C, m)
        c_in, m = depthwise.shape[-2:]
        pointwise = np.asarray(layer.pointwise_kernel.numpy(), np.float64).reshape(c_in * m, -1)
        per_row = np.sqrt((pointwise**2).sum(axis=1)).reshape(c_in, m)
        taps = np.sqrt((np.moveaxis(depthwise, -2, 0).reshape(c_in, -1, m) ** 2).sum(axis=1))
        return np.asarray((per_row * taps).sum(axis=1))
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    axis = -1 if is_kind(layer, TRANSPOSED) else -2 if kernel.ndim > 2 else 0
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
    graph_model = functional(model)
    by_name = nodes_by_name(graph_model)
    probe = keras.Model(
        single(graph_model.inputs), [by_name[r.layer.name].input_tensors[0] for r in readers]
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
