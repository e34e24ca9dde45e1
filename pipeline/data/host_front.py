"""The model's preprocessing front moved to the host (`--host-preprocessing`).

Transfer-learning classifiers carry their preprocessing inside:
`Input -> Rescaling(1/127.5, offset=-1) -> Resizing(96, 96) -> backbone`. On a device those
layers cost the same at any backbone width, and resizing the raw image before int8
quantisation is what a device should do anyway. `move_front` finds the leading chain of
stateless preprocessing layers right after the model's single input, returns the model from
the chain's output on (every variant, float32 included, then takes the same input) and a
`HostFront` that applies the same steps in numpy on the host; `preprocessing.json` records
them (`HostFront.to_json`) after the `preprocessing` block, so a device can reproduce them.

Movable layers (a chain of one-input layers, each called once, the input feeding only the
first, float32):

- `Rescaling`: x * scale + offset (scalar or per channel).
- `Resizing` with `interpolation` bilinear or nearest, no crop/pad to the aspect ratio,
  no antialiasing: TensorFlow's `tf.image.resize` (half-pixel centers), which Keras runs.

The chain stops at the first other layer. When it stops at a nested Functional or
Sequential model whose own graph starts with such a chain (a preprocessing block, or a
backbone with Rescaling inside), the model is flattened first (`pipeline.models.flatten`,
outputs equal to float tolerance) and the chain continues inside it. The numpy steps are
checked against the model's own layers on training samples before they are used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import DataError
from pipeline.models.graph import call_nodes, layer_graph

RESIZE_METHODS = ("bilinear", "nearest")
TOLERANCE = 1e-4  # max |numpy - Keras| relative to the front's output range


@dataclass(frozen=True)
class Rescale:
    """`Rescaling`: x * scale + offset, broadcast over the last axis."""

    scale: np.ndarray
    offset: np.ndarray
    layer: str

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float32) * self.scale + self.offset).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "op": "rescale",
            "layer": self.layer,
            "formula": "x * scale + offset",
            "scale": np.asarray(self.scale, np.float64).tolist(),
            "offset": np.asarray(self.offset, np.float64).tolist(),
        }


@dataclass(frozen=True)
class Resize:
    """`Resizing`: images (N, H, W, C) to (height, width) as `tf.image.resize` does."""

    height: int
    width: int
    interpolation: str  # one of RESIZE_METHODS
    layer: str

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim != 4:
            raise DataError(
                f"The host resize ({self.layer}) takes images (N, H, W, C); received shape "
                f"{x.shape}."
            )
        if self.interpolation == "nearest":
            return x[:, _nearest(x.shape[1], self.height)][:, :, _nearest(x.shape[2], self.width)]
        # bilinear is separable and linear: rows @ image @ cols.T per channel, two small
        # matmuls (5x faster than gathering and blending on a 28x28 -> 96x96 image)
        rows = _bilinear_matrix(x.shape[1], self.height)
        cols = _bilinear_matrix(x.shape[2], self.width)
        y = np.matmul(np.matmul(rows, np.moveaxis(x, 3, 1)), cols.T)  # (N, C, height, width)
        return np.ascontiguousarray(np.moveaxis(y, 1, 3))

    def to_json(self) -> dict[str, Any]:
        return {
            "op": "resize",
            "layer": self.layer,
            "height": self.height,
            "width": self.width,
            "interpolation": self.interpolation,
            "half_pixel_centers": True,
            "align_corners": False,
            "antialias": False,
            "implementation": "tf.image.resize (Keras Resizing): source coordinate "
            "(i + 0.5) * in / out - 0.5, clamped to the edge (nearest: floor((i + 0.5) * in "
            "/ out)), float32",
        }


Step = Rescale | Resize


def _nearest(size_in: int, size_out: int) -> np.ndarray:
    scale = np.float32(size_in / size_out)
    index = np.floor((np.arange(size_out, dtype=np.float32) + 0.5) * scale).astype(np.int64)
    return np.clip(index, 0, size_in - 1)


def _bilinear(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper source indices and the weight of the upper one, per output index."""
    scale = np.float32(size_in / size_out)
    source = (np.arange(size_out, dtype=np.float32) + 0.5) * scale - 0.5
    floor = np.floor(source)
    lower = np.clip(floor.astype(np.int64), 0, size_in - 1)
    upper = np.clip(np.ceil(source).astype(np.int64), 0, size_in - 1)
    return lower, upper, (source - floor).astype(np.float32)


@functools.lru_cache(maxsize=16)
def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights: output i = (1 - w) input[lower] + w input[upper]."""
    lower, upper, weight = _bilinear(size_in, size_out)
    matrix = np.zeros((size_out, size_in), np.float32)
    np.add.at(matrix, (np.arange(size_out), lower), 1 - weight)
    np.add.at(matrix, (np.arange(size_out), upper), weight)
    matrix.flags.writeable = False  # shared by every call through the cache
    return matrix


@dataclass(frozen=True)
class HostFront:
    """The steps cut off the model, applied on the host after `preprocessing`."""

    steps: tuple[Step, ...]
    input_shape: tuple[int | None, ...]  # the original model's input
    output_shape: tuple[int | None, ...]  # the device model's input
    flattened: tuple[str, ...] = field(default=())  # nested models inlined to reach a step

    def apply(self, x: np.ndarray) -> np.ndarray:
        for step in self.steps:
            x = step.apply(x)
        return np.asarray(x, np.float32)

    def to_json(self) -> dict[str, Any]:
        """The `host_front` block of preprocessing.json (and of the report's data)."""
        return {
            "order": "after preprocessing: model_input = steps applied in order to the "
            "preprocessed sample",
            "input_shape": _shape(self.input_shape),
            "output_shape": _shape(self.output_shape),
            "steps": [step.to_json() for step in self.steps],
            "flattened": list(self.flattened),
        }


def _shape(shape: tuple[int | None, ...]) -> list[int | None]:
    return [None if d is None else int(d) for d in shape]


def step_of(layer: Any) -> Step | None:
    """The host step of a movable preprocessing layer; None for any other layer."""
    import keras

    dtype = getattr(getattr(layer, "dtype_policy", None), "compute_dtype", "float32")
    if dtype != "float32":
        return None
    if isinstance(layer, keras.layers.Rescaling):
        scale = np.asarray(layer.scale, np.float32)
        offset = np.asarray(layer.offset, np.float32)
        return Rescale(scale, offset, layer.name)
    if isinstance(layer, keras.layers.Resizing):
        config = layer.get_config()
        if (
            config.get("interpolation") not in RESIZE_METHODS
            or config.get("crop_to_aspect_ratio")
            or config.get("pad_to_aspect_ratio")
            or config.get("antialias")
            or config.get("data_format", "channels_last") != "channels_last"
        ):
            return None
        return Resize(
            int(config["height"]), int(config["width"]), config["interpolation"], layer.name
        )
    return None


@dataclass(frozen=True)
class Chain:
    """The leading chain of a model's graph: its steps, the tensor after them, and the
    layer that stopped it (None: the tensor feeds several layers, or none)."""

    steps: tuple[Step, ...]
    end: Any
    stop: Any


def _called_nodes(graph: Any) -> list[Any]:
    """The nodes that call a layer, inputs first."""
    return [n for n in call_nodes(graph) if not n.is_input and n.operation is not None]


def leading_chain(model: Any) -> Chain:
    """The movable steps right after `model`'s single input (none for other models)."""
    graph = layer_graph(model)
    if graph is None or len(graph.inputs) != 1:
        return Chain((), None, None)
    nodes = _called_nodes(graph)
    calls: dict[int, int] = {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    outputs = {id(t) for t in graph.outputs}
    tensor = graph.inputs[0]
    steps: list[Step] = []
    while True:
        users = [n for n in nodes if any(t is tensor for t in n.input_tensors)]
        if len(users) != 1:
            return Chain(tuple(steps), tensor, None)
        node = users[0]
        plain = len(node.input_tensors) == 1 and len(node.outputs) == 1
        step = step_of(node.operation) if plain and calls[id(node.operation)] == 1 else None
        if step is None or id(node.outputs[0]) in outputs:  # keep a model to run
            return Chain(tuple(steps), tensor, node.operation)
        steps.append(step)
        tensor = node.outputs[0]


def _find(model: Any) -> tuple[Any, Chain, tuple[str, ...]]:
    """The chain, continued into a nested first model by flattening `model` when that
    model starts with movable steps; and the nested models inlined for it."""
    import keras

    chain = leading_chain(model)
    if not isinstance(chain.stop, keras.Model) or not leading_chain(chain.stop).steps:
        return model, chain, ()
    from pipeline.models.flatten import flatten

    flat = flatten(model)
    if not flat.flattened:
        return model, chain, ()
    return flat.model, leading_chain(flat.model), flat.flattened


def _cut(model: Any, chain: Chain) -> tuple[Any, Any]:
    """The device model (from `chain.end` on, a clone with the same weights) and the
    front model (input to `chain.end`) that the host steps replace."""
    import keras

    graph = layer_graph(model)
    source = keras.Model(chain.end, graph.output, name=model.name)
    start = keras.Input(
        batch_shape=tuple(chain.end.shape),
        dtype=chain.end.dtype,
        name=graph.inputs[0]._keras_history[0].name,
    )
    device = keras.models.clone_model(source, input_tensors=start)
    device.set_weights(source.get_weights())
    if getattr(model, "compiled", False) and getattr(model, "loss", None) is not None:
        device.compile(optimizer="adam", loss=model.loss)  # keeps the model's own loss
    return device, keras.Model(graph.inputs[0], chain.end)


def _check(front: HostFront, keras_front: Any, x: np.ndarray) -> None:
    """Raises unless the numpy steps equal the model's own layers on `x`."""
    expected = np.asarray(keras_front.predict(x, verbose=0))
    got = front.apply(x)
    scale = max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    error = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if got.shape != expected.shape or error > TOLERANCE * scale:
        raise DataError(
            f"--host-preprocessing: the host steps differ from the model's own layers "
            f"(shape {got.shape} vs {expected.shape}, max |difference| {error:.3g}); "
            "expected them equal to float tolerance. Build without --host-preprocessing "
            "and report the model's front layers."
        )


def _nothing(model: Any, chain: Chain) -> str:
    graph = layer_graph(model)
    if graph is None or len(graph.inputs) != 1:
        inputs = "no layer graph" if graph is None else f"{len(graph.inputs)} inputs"
        why = f"the model has {inputs}; only a single-input functional model's front moves"
    elif chain.stop is None:
        why = "the model's input feeds more than one layer"
    else:
        why = (
            f"the first layer after the input is {type(chain.stop).__name__} "
            f"'{chain.stop.name}', not Rescaling or Resizing (bilinear or nearest, without "
            "crop, pad or antialiasing)"
        )
    return (
        f"--host-preprocessing: nothing to move to the host ({why}); the model is built as it is."
    )


def move_front(model: Any, splits: Any) -> tuple[Any, Any, str | None]:
    """`model` without its leading preprocessing chain and `splits` whose preprocessing
    ends with those steps on the host; or both unchanged and a note saying why.

    Raises:
        DataError: the numpy steps do not reproduce the model's layers.
    """
    from dataclasses import replace

    model_used, chain, flattened = _find(model)
    if not chain.steps:
        return model, splits, _nothing(model, chain)
    device, keras_front = _cut(model_used, chain)
    front = HostFront(
        chain.steps,
        tuple(model.inputs[0].shape),
        tuple(device.inputs[0].shape),
        flattened,
    )
    _check(front, keras_front, splits.model_inputs("train")[:32])
    spec = replace(splits.preprocessing, front=front)
    return device, replace(splits, preprocessing=spec), None
