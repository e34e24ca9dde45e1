"""The Keras graph walk: a model's functional layer graph and its call nodes in order.

Imports nothing of the project, so every stage (the data stage's host front, the prune
stage's channel analysis, flattening) can walk a graph without reaching into another stage.
"""

from __future__ import annotations

from typing import Any


def layer_graph(model: Any) -> Any:
    """The functional graph of a Sequential or functional model; None for a subclass."""
    graph = getattr(model, "_functional", None) or model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def call_nodes(graph: Any) -> list[Any]:
    """The call nodes of a functional graph, inputs first (input nodes included)."""
    return [
        node
        for depth in sorted(graph._nodes_by_depth, reverse=True)
        for node in graph._nodes_by_depth[depth]
    ]
