"""Rebuilding a model without the planned channels, and the reference it must equal.

The rebuilt model equals the original with the removed channels' reads zeroed: the input
rows (input axis of the kernel) of every consuming Conv/Dense, the depthwise kernel of a
consuming SeparableConv, and at every spatial position for Flatten into Dense
(`mask_removed_inputs`). Zeroing the producer instead would not be exact: the bias and a
following BatchNormalization's beta still emit a constant, which the consumer turns into an
offset that the pruned model does not have. Fine-tuning afterwards recovers that offset, and
anything else the removed channels carried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.prune.structured.graph import LayerRole
from pipeline.prune.structured.nodes import SEPARABLE, TRANSPOSED, fresh_input, is_kind
from pipeline.prune.structured.planning import ChannelPlan

if TYPE_CHECKING:
    import keras


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
    if is_kind(layer, SEPARABLE):
        m = int(layer.depth_multiplier)
        rows = None if in_index is None else (in_index[:, None] * m + np.arange(m)).ravel()
        out["depthwise_kernel"] = _slice(out["depthwise_kernel"], -2, in_index)
        pointwise = _slice(out["pointwise_kernel"], -2, rows)
        out["pointwise_kernel"] = _slice(pointwise, -1, out_index)
    elif is_kind(layer, TRANSPOSED):
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
        inputs = keras.tree.map_structure(fresh_input, model.input)  # same names, structure
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
        if is_kind(layer, SEPARABLE):
            variable, axis = layer.depthwise_kernel, -2
        elif is_kind(layer, TRANSPOSED):
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
