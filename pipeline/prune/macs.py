"""Multiply-accumulates of a Keras model, counted from its layers' static shapes.

One MAC is one multiply and one add of a kernel weight with an input value. Counted, per
example (batch 1), with `P_out` the number of output positions (product of the output's
spatial dims; 1 for a vector) and `k` the product of the kernel size:

- Conv1D/2D/3D:              P_out * k * C_in / groups * C_out
- DepthwiseConv1D/2D:        P_out * k * C_in * depth_multiplier
- SeparableConv1D/2D:        P_out * k * C_in * m  +  P_out * C_in * m * C_out
- Conv1D/2D/3DTranspose:     P_in * k * C_in * C_out (every input position is scattered
                             through the whole kernel)
- Dense:                     P * in * out (P positions when applied to a sequence/map)

Not counted: biases, BatchNormalization (the converter folds it into the convolution before
it), activations, pooling, padding, resizing, Add/Concatenate and other element-wise work.
These are memory-bound and small next to the kernels above, and what structured pruning
shrinks is the kernels. A nested model's layers are counted as part of it, named
`outer/inner`, as are a flattened model's (`pipeline.models.flatten`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class LayerMacs:
    """MACs of one call of a layer."""

    name: str  # qualified: "outer/inner" inside a nested model
    kind: str
    macs: int | None  # None when a dimension is not static
    in_channels: int | None
    out_channels: int | None


def _static(dims: Any) -> list[int] | None:
    out = []
    for d in dims:
        if d is None:
            return None
        out.append(int(d))
    return out


def layer_macs(layer: Any, input_shape: tuple, output_shape: tuple) -> int | None:
    """MACs of `layer` mapping `input_shape` to `output_shape` (batch axis included), or
    None when the layer does no counted work or a needed dimension is unknown."""
    import keras

    L = keras.layers  # noqa: N806 - a short alias for the long class names below
    in_dims, out_dims = _static(input_shape[1:]), _static(output_shape[1:])
    if in_dims is None or out_dims is None:
        return None
    c_in, c_out = in_dims[-1], out_dims[-1]
    positions_out = math.prod(out_dims[:-1])
    if isinstance(layer, L.Dense):
        return positions_out * c_in * c_out
    kernel = math.prod(getattr(layer, "kernel_size", ()) or (1,))
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        m = int(layer.depth_multiplier)
        return positions_out * kernel * c_in * m + positions_out * c_in * m * c_out
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return positions_out * kernel * c_in * int(layer.depth_multiplier)
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return math.prod(in_dims[:-1]) * kernel * c_in * c_out
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return positions_out * kernel * (c_in // int(layer.groups)) * c_out
    return None


def _graph(model: Any) -> Any:
    """The functional graph of a Sequential or functional model (None for a subclass)."""
    graph = getattr(model, "_functional", None) or model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def count_macs(model: keras.Model, prefix: str = "") -> list[LayerMacs]:
    """MACs of every counted layer call of `model`, in graph order.

    Raises:
        ValueError: the model is neither Sequential (built with an Input) nor functional.
    """
    from pipeline.models.flatten import display_name

    graph = _graph(model)
    if graph is None:
        raise ValueError(
            f"Model '{model.name}' has no functional graph (a subclassed model, or a "
            "Sequential model built without keras.Input); MACs cannot be counted."
        )
    out: list[LayerMacs] = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input or layer is None:
                continue
            name = f"{prefix}{display_name(layer.name)}"
            if _graph(layer) is not None:
                out.extend(count_macs(layer, f"{name}/"))
                continue
            if len(node.input_tensors) != 1 or len(node.outputs) != 1:
                continue
            shape_in = tuple(node.input_tensors[0].shape)
            shape_out = tuple(node.outputs[0].shape)
            macs = layer_macs(layer, shape_in, shape_out)
            if macs is None and not _is_counted_kind(layer):
                continue
            out.append(
                LayerMacs(
                    name,
                    type(layer).__name__,
                    macs,
                    shape_in[-1] if shape_in else None,
                    shape_out[-1] if shape_out else None,
                )
            )
    return out


def _is_counted_kind(layer: Any) -> bool:
    import keras

    L = keras.layers  # noqa: N806
    kinds = (
        L.Dense,
        L.Conv1D,
        L.Conv2D,
        L.Conv3D,
        L.Conv1DTranspose,
        L.Conv2DTranspose,
        L.Conv3DTranspose,
        L.DepthwiseConv1D,
        L.DepthwiseConv2D,
        L.SeparableConv1D,
        L.SeparableConv2D,
    )
    return isinstance(layer, kinds)


def total_macs(model: keras.Model) -> int | None:
    """Sum of `count_macs`; None when any counted layer has a non-static dimension."""
    layers = count_macs(model)
    if any(layer.macs is None for layer in layers):
        return None
    return sum(layer.macs for layer in layers)  # type: ignore[misc]
