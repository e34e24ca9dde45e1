"""Residual branches: finding the removable ones, scoring them, zeroing and dropping them.

A residual branch is a chain of single-input layers from a tensor to an Add that sums the
chain's output with that tensor again; without the chain the Add passes its skip input
through. The branches that add least to their skip input go first (`--drop-blocks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import ModelError
from pipeline.models.flatten import display_name
from pipeline.models.graph import call_nodes
from pipeline.prune.structured.nodes import (
    PRODUCERS,
    fresh_input,
    functional,
    layer_classes,
    nodes_by_name,
    single,
)

if TYPE_CHECKING:
    import keras


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

    graph = functional(model)
    all_nodes = call_nodes(graph)
    made_by: dict[int, Any] = {}
    readers: dict[int, int] = {}
    calls: dict[int, int] = {}
    for node in all_nodes:
        for t in node.outputs:
            made_by[id(t)] = node
        if node.is_input or node.operation is None:
            continue
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for t in node.input_tensors:
            readers[id(t)] = readers.get(id(t), 0) + 1
    for t in graph.outputs:
        readers[id(t)] = readers.get(id(t), 0) + 1
    last_kinds = (*layer_classes(PRODUCERS), keras.layers.BatchNormalization)
    found = []
    for node in all_nodes:
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
    graph = functional(model)
    by_name = nodes_by_name(graph)
    outputs = []
    for b in branches:
        ins = by_name[b.add].input_tensors
        outputs += [ins[b.skip_index], ins[1 - b.skip_index]]
    probe = keras.Model(single(graph.inputs), outputs)
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

    graph = functional(model)
    gone = {name for b in branches for name in b.layers}
    passthrough = {b.add: b.skip_index for b in branches}
    inputs = [fresh_input(t) for t in graph.inputs]
    tensors: dict[int, Any] = {id(o): n for o, n in zip(graph.inputs, inputs, strict=True)}
    clones: dict[str, Any] = {}
    for node in call_nodes(graph):
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
    new = keras.Model(single(inputs), single(outputs), name=model.name)
    for name, clone in clones.items():
        clone.set_weights(model.get_layer(name).get_weights())
    return new


def check_count(model: keras.Model, branches: Sequence[ResidualBranch], count: int) -> None:
    """Raises ModelError when `--drop-blocks count` asks for more than `branches`."""
    if len(branches) < count:
        raise ModelError(
            f"--drop-blocks {count} asks for more residual branches than model "
            f"'{model.name}' has: {len(branches)} can be removed (a chain of single-input "
            "layers from a tensor to an Add of it, ending in a BatchNormalization or "
            "Conv/Dense). "
            + (
                f"Pass --drop-blocks {len(branches)} or fewer."
                if branches
                else "Leave out --drop-blocks for this model."
            )
        )


def weakest_first(
    model: keras.Model,
    branches: Sequence[ResidualBranch],
    x: np.ndarray,
    branch_ms: Callable[[ResidualBranch], float] | None = None,
) -> tuple[list[int], list[float]]:
    """The indices of `branches`, the one adding least (per ms of time with `branch_ms`)
    first, and each branch's score (`branch_scores`)."""
    scores = branch_scores(model, branches, x)
    rank = list(scores)
    if branch_ms is not None:
        times = [branch_ms(b) for b in branches]
        rank = [s / max(t, 1e-6) for s, t in zip(scores, times, strict=True)]
    return np.argsort(rank, kind="stable").tolist(), scores


def drop_weakest_branches(
    model: keras.Model,
    x: np.ndarray,
    count: int,
    branch_ms: Callable[[ResidualBranch], float] | None = None,
) -> tuple[keras.Model, list[dict[str, Any]], keras.Model]:
    """The model without its `count` weakest residual branches (`--drop-blocks`), what was
    dropped, and the reference it must equal (those branches zeroed). With `branch_ms`
    (measured time of a branch) the branches adding least per ms of time go first.

    Raises:
        ModelError: the model has fewer than `count` removable residual branches.
    """
    branches = residual_branches(model)
    check_count(model, branches, count)
    order, scores = weakest_first(model, branches, x, branch_ms)
    chosen = sorted(order[:count])
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
