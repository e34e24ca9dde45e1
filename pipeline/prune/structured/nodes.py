"""Reading and rewiring a Keras functional graph: its call nodes in order, fresh inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.errors import ModelError
from pipeline.models.graph import call_nodes, layer_graph

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


def layer_classes(names: Sequence[str]) -> tuple[type, ...]:
    """The Keras layer classes of these names that this Keras version has."""
    import keras

    return tuple(c for c in (getattr(keras.layers, n, None) for n in names) if c is not None)


def functional(model: Any) -> Any:
    """The functional graph of `model` (a Sequential built on keras.Input has one).

    Raises:
        ModelError: the model has no layer graph (a subclassed model).
    """
    graph = layer_graph(model)
    if graph is None:
        raise ModelError(
            f"Structured pruning needs a Sequential model built on keras.Input or a "
            f"functional model; model '{model.name}' ({type(model).__name__}) has no layer "
            "graph. Rebuild it with the functional API, or leave out --structured-sparsity."
        )
    return graph


def nodes_by_name(graph: Any) -> dict[str, Any]:
    """The call node of every layer, by layer name (layers called once)."""
    return {n.operation.name: n for n in call_nodes(graph) if not n.is_input}


def fresh_input(tensor: Any) -> Any:
    """A new keras.Input like a model's input tensor, with its name."""
    import keras

    return keras.Input(
        batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor._keras_history[0].name
    )


def single(tensors: list[Any]) -> Any:
    """A tensor list as Keras wants it for a one-tensor model: the tensor itself."""
    return tensors[0] if len(tensors) == 1 else tensors


def is_kind(layer: Any, names: Sequence[str]) -> bool:
    """Whether `layer` is one of the named Keras layer classes."""
    return isinstance(layer, layer_classes(names))
