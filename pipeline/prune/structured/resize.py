"""The model's own enlarging front at a smaller size (`--structured-resize N`).

Transfer-learning classifiers often enlarge their input inside the model: a 28x28 MedMNIST
image goes through `Resizing(96, 96)` before a MobileNetV2. Every layer after the front
then works on 96x96 maps although the image holds 28x28 pixels, and the time of a
convolutional network grows with its maps' area (measured on a nested MobileNetV2-0.35:
int8 0.240 ms at 96x96, 0.112 ms at 64x64). Setting the front to a smaller size removes no
pixel the input had while it stays at least the input's own size; the layers after it keep
their weights (convolutions and global pooling do not depend on the map size), and
fine-tuning lets them adapt to the coarser maps.

`--structured-resize N` sets the front to N x N; the speed search (`--speedup-target`) tries
`SEARCH_SHARES` of the front's size (multiples of `SIZE_MULTIPLE`, never below the input's
own size) beside the channel and branch cuts. Only a front that is the model's single
`Resizing` layer and enlarges its input qualifies; a model whose layers depend on the map
size (Flatten into Dense) cannot be resized and is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import ModelError
from pipeline.models.graph import call_nodes
from pipeline.prune.structured.nodes import fresh_input, functional

if TYPE_CHECKING:
    import keras

SEARCH_SHARES = (2 / 3, 1 / 2)  # of the front's side, tried by the speed search
SIZE_MULTIPLE = 8


@dataclass(frozen=True)
class Front:
    """The model's enlarging Resizing layer."""

    layer: str
    size: tuple[int, int]  # (height, width) it makes
    source: tuple[int, int]  # (height, width) of its input

    @property
    def enlarges(self) -> bool:
        return self.size[0] > self.source[0] and self.size[1] > self.source[1]

    def search_sizes(self) -> tuple[int, ...]:
        """Smaller square sides for the speed search (none for a non-square front)."""
        if self.size[0] != self.size[1] or not self.enlarges:
            return ()
        floor = max(self.source)
        sides = {
            max(SIZE_MULTIPLE, int(round(self.size[0] * share / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
            for share in SEARCH_SHARES
        }
        return tuple(sorted((s for s in sides if floor <= s < self.size[0]), reverse=True))


def front(model: keras.Model) -> Front | None:
    """The model's single Resizing layer with static sizes, working on maps of the input's
    own size (the front); None when it has none, several, or one deeper in the model (a
    flat functional model: nested ones are inlined first)."""
    import keras

    found = []
    for node in call_nodes(functional(model)):
        layer = node.operation
        if not node.is_input and isinstance(layer, keras.layers.Resizing):
            found.append((layer, node))
    if len(found) != 1:
        return None
    layer, node = found[0]
    shape, given = node.input_tensors[0].shape, model.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    if tuple(shape[1:3]) != tuple(given[1:3]):  # not the front: something resized before it
        return None
    config = layer.get_config()
    return Front(
        layer.name, (int(config["height"]), int(config["width"])), (int(shape[1]), int(shape[2]))
    )


def resized(model: keras.Model, side: int) -> keras.Model:
    """A copy of the flat `model` whose Resizing front makes `side` x `side`, holding the
    same weights.

    Raises:
        ModelError: the model has no single Resizing layer, or a layer depends on the map
            size (its weights no longer fit).
    """
    import keras

    found = front(model)
    if found is None:
        raise ModelError(
            f"--structured-resize {side} needs a model with one Resizing layer (e.g. "
            "Rescaling -> Resizing(96, 96) -> backbone); received a model with none or "
            "several. Leave out --structured-resize, or add the Resizing front to the model."
        )

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if layer.name == found.layer:
            config["height"] = config["width"] = int(side)
        return type(layer).from_config(config)

    try:
        if isinstance(model, keras.Sequential):
            new = keras.models.clone_model(model, clone_function=clone)
        else:
            inputs = keras.tree.map_structure(fresh_input, model.input)
            new = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone)
        for layer in model.layers:
            if layer.weights:
                new.get_layer(layer.name).set_weights(layer.get_weights())
    except ValueError as error:
        raise ModelError(
            f"--structured-resize {side}: the model cannot run at {side}x{side} after its "
            f"Resizing layer '{found.layer}' ({str(error).splitlines()[0]}); a layer depends "
            "on the map size (e.g. Flatten into Dense). Leave out --structured-resize or "
            "pool globally before the classifier."
        ) from None
    return new
