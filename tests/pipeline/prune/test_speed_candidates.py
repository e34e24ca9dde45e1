"""The speed search's grid: residual branches dropped as well as channels (issue 34)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import StructuredConfig
from pipeline.models.flatten import flatten
from pipeline.prune import structured
from pipeline.prune.structured.speed import Candidate, block_counts, candidates, shortlist
from tests.pipeline.prune.test_latency import FakeProfiler, latency_of
from tests.pipeline.prune.test_structured import randomized


def _cut(blocks: int, lost: float, speedup: float, sparsity: float = 0.5) -> Candidate:
    return Candidate(sparsity, 8, blocks, 1.0 / speedup, speedup, lost)


def test_shortlist_takes_the_least_loss_per_branch_count_fewest_branches_first() -> None:
    points = [
        _cut(4, 0.01, 2.5),
        _cut(0, 0.30, 2.1),
        _cut(0, 0.20, 1.9),  # least loss at 0 branches, but misses the target
        _cut(2, 0.15, 2.0),
        _cut(2, 0.10, 2.2),
        _cut(0, 0.25, 2.0),
    ]
    picked = shortlist(points, 2.0, 3)
    assert [(p.drop_blocks, p.importance_lost) for p in picked] == [(0, 0.25), (2, 0.10), (4, 0.01)]
    assert shortlist(points, 2.0, 2) == picked[:2]
    assert shortlist(points, 3.0, 3) == []
    same = [p for p in points if p.drop_blocks == 0]  # one branch count: the next least loss
    assert [p.importance_lost for p in shortlist(same, 2.0, 3)] == [0.25, 0.30]
    assert [p.importance_lost for p in shortlist(points, 2.0, 5)] == [0.25, 0.10, 0.01, 0.15, 0.30]


def test_block_counts_span_the_removable_branches_unless_given() -> None:
    model = flatten(randomized("mobilenet_v2")).model
    n = len(structured.residual_branches(model))
    assert n >= 2
    counts = block_counts(model, StructuredConfig(sparsity="auto"))
    assert counts[0] == 0 and counts[-1] == n and list(counts) == sorted(set(counts))
    assert block_counts(model, StructuredConfig(sparsity="auto", drop_blocks=1)) == (1,)
    plain = flatten(randomized("conv2d")).model
    assert block_counts(plain, StructuredConfig(sparsity="auto")) == (0,)


def test_dropping_branches_is_predicted_faster_at_the_same_channel_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BEDSIDE_LATENCY_CACHE", str(tmp_path))
    model = flatten(randomized("mobilenet_v2")).model
    latency = latency_of(model, tmp_path, FakeProfiler())
    x = np.random.default_rng(0).normal(size=(8, *model.inputs[0].shape[1:])).astype("float32")
    config = StructuredConfig(sparsity="auto", min_channels=2, auto_grid=(0.5,))
    points = candidates(model, config, x, latency).points
    counts = block_counts(model, config)
    assert sorted({p.drop_blocks for p in points}) == list(counts)
    for multiple in {p.channel_multiple for p in points}:
        by_blocks = {
            p.drop_blocks: p.predicted_ms
            for p in points
            if p.channel_multiple == multiple and p.sparsity == 0.5
        }
        assert by_blocks[counts[-1]] < by_blocks[0]
