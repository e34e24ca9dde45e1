"""Channel planning: which channels every prunable group keeps.

Global scope removes the lowest R of all prunable channels by their score
(`pipeline.prune.structured.scoring`); layer scope removes round(R * width) in every group;
a threshold T removes every channel whose score is below T (scope does not apply). Every
group keeps at least min(width, `min_channels`) channels, its strongest. With
`channel_multiple` M > 1 each shrunk group then keeps the nearest multiple of M (at least M;
a group no wider than M stays whole), again its strongest channels: XNNPACK's int8 kernels
work in tiles of 8-16 channels, so on bedside CPUs an aligned width often runs faster than a
narrower unaligned one (see bench/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pipeline.config import PruneScope, StructuredConfig
from pipeline.prune.structured.graph import ChannelGraph, Channels, analyse
from pipeline.prune.structured.scoring import channel_scores

if TYPE_CHECKING:
    import keras

# measured time saved per channel removed, by group (`LatencyModel.channel_costs`)
CostOf = Callable[[ChannelGraph], dict[int, float]]


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


def _below_threshold(
    scores: dict[int, np.ndarray], floor: dict[int, int], threshold: float
) -> dict[int, set[int]]:
    """Every channel scoring below `threshold`, keeping each group's floor."""
    remove = {}
    for gid, s in scores.items():
        below = [int(c) for c in np.argsort(s, kind="stable") if s[c] < threshold]
        remove[gid] = set(below[: len(s) - floor[gid]])
    return remove


def _lowest_per_group(
    scores: dict[int, np.ndarray], floor: dict[int, int], sparsity: float
) -> dict[int, set[int]]:
    """The lowest round(R * width) channels of every group, keeping each group's floor."""
    remove = {}
    for gid, s in scores.items():
        count = min(int(round(sparsity * len(s))), len(s) - floor[gid])
        remove[gid] = {int(c) for c in np.argsort(s, kind="stable")[:count]}
    return remove


def _lowest_overall(
    scores: dict[int, np.ndarray], floor: dict[int, int], sparsity: float
) -> dict[int, set[int]]:
    """The lowest R of all channels, keeping each group's floor."""
    remove: dict[int, set[int]] = {gid: set() for gid in scores}
    total = sum(len(s) for s in scores.values())
    target = int(round(sparsity * total))
    ranked = sorted((float(s[c]), gid, int(c)) for gid, s in scores.items() for c in range(len(s)))
    for _, gid, c in ranked:
        if sum(len(r) for r in remove.values()) >= target:
            break
        if len(scores[gid]) - len(remove[gid]) > floor[gid]:
            remove[gid].add(c)
    return remove


def select_channels(
    model: keras.Model,
    config: StructuredConfig,
    x: np.ndarray | None = None,
    cost: CostOf | None = None,
    scores: dict[int, np.ndarray] | None = None,
) -> ChannelPlan:
    """The channels `config` keeps in every prunable group of `model`; nothing is changed.
    `x`: training inputs, needed by the activation criterion. `cost`: measured time saved
    per channel of each group (`LatencyModel.channel_costs`); given, channels are ranked by
    score per unit of time saved (`importance_per_ms`) instead of by score. `scores`: the
    criterion's channel scores of `model` computed before (`channel_scores` of
    `analyse(model)`, which numbers groups the same way every time), to rank many plans of
    one model without scoring it again.

    Raises:
        ModelError: the model has no functional graph.
    """
    graph = analyse(model)
    if scores is None:
        scores = channel_scores(model, graph, config.criterion, x)
    if cost is not None:
        scores = importance_per_ms(scores, cost(graph))
    floor = {gid: min(len(s), config.min_channels) for gid, s in scores.items()}
    if config.threshold is not None:
        remove = _below_threshold(scores, floor, config.threshold)
    elif config.sparsity is None or config.auto:  # auto: search_structured picks R first
        raise ValueError("select_channels needs a config with a sparsity R or a threshold")
    elif config.scope is PruneScope.LAYER:
        remove = _lowest_per_group(scores, floor, float(config.sparsity))
    else:
        remove = _lowest_overall(scores, floor, float(config.sparsity))
    if config.channel_multiple > 1:
        for gid, s in scores.items():
            width = aligned_width(
                len(s) - len(remove[gid]), len(s), floor[gid], config.channel_multiple
            )
            remove[gid] = {int(c) for c in np.argsort(s, kind="stable")[: len(s) - width]}
    kept = {
        gid: np.array([c for c in range(len(s)) if c not in remove[gid]], dtype=np.int64)
        for gid, s in scores.items()
    }
    return ChannelPlan(graph, kept, scores)


def importance_per_ms(
    scores: dict[int, np.ndarray], costs: dict[int, float]
) -> dict[int, np.ndarray]:
    """Channel scores divided by their group's time saved per channel (normalised to a mean
    of 1 over groups): the lowest go first, so costly layers give channels sooner."""
    positive = [c for c in costs.values() if c > 0]
    mean = float(np.mean(positive)) if positive else 1.0
    floor = mean * 1e-3  # a group that saves no measured time is not free to keep forever
    return {g: s / (max(costs.get(g, mean), floor) / mean) for g, s in scores.items()}


def aligned_width(kept: int, size: int, floor: int, multiple: int) -> int:
    """`kept` moved to the nearest multiple of `multiple` (at least one multiple and the
    floor), or `size` when that is not below it."""
    if kept >= size:
        return size
    width = max(multiple, int(math.floor(kept / multiple + 0.5)) * multiple)
    if width < floor:
        width = math.ceil(floor / multiple) * multiple
    return min(width, size)
