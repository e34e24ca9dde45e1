"""Nested functional models inlined into one flat graph, so every pruning path sees layers.

Transfer-learning classifiers call a whole backbone as one layer:
`x = base(Resizing(96, 96)(Rescaling(...)(inp)))`. Channel analysis, residual branches and
the activation probe walk one functional graph and would see that backbone as a single
opaque layer. `flatten` re-calls every layer of a nested Functional (or Sequential) model on
the outer tensors, in the nested graph's order, recursively (any depth), and returns a new
model whose outputs equal the original's.

**Names.** An inlined layer is a clone named `<outer><SEPARATOR><inner>`, e.g.
`mobilenetv2_0.35_96>block_3_expand`: Keras forbids '/' in layer names (it separates
variable paths). Reports show such names with '/' (`display_name`), as the nested model's
layers were named before: `mobilenetv2_0.35_96/block_3_expand`.

**Equivalence.** Every layer (inlined or not) is cloned from its config and given the
original's weights, so the flat model shares no variable with the original. A nested model
called with an explicit `training=` (`base(x, training=False)`) passes it on to each of its
layers that takes one, so BatchNormalization and Dropout behave as they did inside it (and,
as in Keras, a `training` given to the whole model overrides it).

**Left whole** (listed in `skipped` with the reason, never silently): a subclassed model
(it has no layer graph), a sub-model called more than once (flattening would unshare its
weights), and a sub-model called with a mask or other arguments, or on a number of tensors
that differs from its inputs. Such a layer is kept as one layer (a clone when Keras can
clone it, else the same object, whose weights the flat model then shares).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.models import compile_like
from pipeline.models.graph import call_nodes, layer_graph

if TYPE_CHECKING:
    import keras

SEPARATOR = ">"


def display_name(name: str) -> str:
    """A layer name as reports show it: inlined layers as `outer/inner`."""
    return name.replace(SEPARATOR, "/")


@dataclass(frozen=True)
class Flattened:
    """The flat model and what happened to each nested model."""

    model: Any = field(repr=False)  # keras.Model; the original itself when nothing was inlined
    flattened: tuple[str, ...]  # nested models inlined, as `display_name`s
    skipped: tuple[dict[str, str], ...]  # {"layer", "reason"} of nested models left whole

    def to_json(self) -> dict[str, Any]:
        """The report's `pruning.flatten` section."""
        return {
            "separator": SEPARATOR,
            "flattened": list(self.flattened),
            "skipped": list(self.skipped),
        }


def _is_model(layer: Any) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def _calls(graph: Any) -> dict[int, int]:
    calls: dict[int, int] = {}
    for node in call_nodes(graph):
        if not node.is_input and node.operation is not None:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    return calls


def _why_left_whole(layer: Any, node: Any, calls: int) -> str | None:
    """Why nested model `layer`, called at `node`, cannot be inlined; None when it can."""
    graph = layer_graph(layer)
    if graph is None:
        return (
            f"subclassed model ({type(layer).__name__}): it has no layer graph to flatten; "
            "its layers are left whole"
        )
    if calls > 1:
        return (
            f"sub-model called {calls} times (shared weights): flattening would unshare "
            "them; its layers are left whole"
        )
    extra = sorted(k for k, v in node.arguments.kwargs.items() if k != "training" and v is not None)
    if extra:
        return f"sub-model called with {', '.join(extra)}; its layers are left whole"
    if len(node.input_tensors) != len(graph.inputs):
        return (
            f"sub-model called on {len(node.input_tensors)} tensors for its "
            f"{len(graph.inputs)} inputs; its layers are left whole"
        )
    return None


def needs_flattening(model: keras.Model) -> bool:
    """Whether `model`'s graph calls a nested model at all (inlinable or not)."""
    graph = layer_graph(model)
    return graph is not None and any(
        _is_model(n.operation) for n in call_nodes(graph) if not n.is_input
    )


class _Inliner:
    """Re-calls every layer of a graph on new tensors, inlining nested models."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, Any]] = []  # (clone, original) to copy weights into
        self.clones: dict[int, Any] = {}
        self.flattened: list[str] = []
        self.skipped: list[dict[str, str]] = []

    def clone(self, layer: Any, name: str) -> Any:
        if id(layer) in self.clones:
            return self.clones[id(layer)]
        config = layer.get_config()
        config["name"] = name
        try:
            new = type(layer).from_config(config)
            self.pairs.append((new, layer))
        except Exception:  # noqa: BLE001 - a layer Keras cannot rebuild stays itself
            new = layer
        self.clones[id(layer)] = new
        return new

    def run(self, graph: Any, inputs: list[Any], prefix: str, training: bool | None) -> list[Any]:
        """The outputs of `graph` called on `inputs`, its layers named `prefix` + name."""
        import keras

        tensors = {id(old): new for old, new in zip(graph.inputs, inputs, strict=True)}
        calls = _calls(graph)
        for node in call_nodes(graph):
            layer = node.operation
            if node.is_input or layer is None:
                continue
            name = prefix + layer.name
            own = node.arguments.kwargs.get("training")
            mode = own if own is not None else training
            if _is_model(layer):
                reason = _why_left_whole(layer, node, calls[id(layer)])
                if reason is None:
                    self.flattened.append(display_name(name))
                    outs = self.run(
                        layer_graph(layer),
                        [tensors[id(t)] for t in node.input_tensors],
                        name + SEPARATOR,
                        mode,
                    )
                    for old, new in zip(node.outputs, outs, strict=True):
                        tensors[id(old)] = new
                    continue
                if id(layer) not in self.clones:
                    self.skipped.append({"layer": display_name(name), "reason": reason})
            args, kwargs = node.arguments.fill_in(tensors)
            clone = self.clone(layer, name)
            if mode is not None and getattr(clone, "_call_has_training_arg", False):
                kwargs = {**kwargs, "training": mode}
            out = clone(*args, **kwargs)
            for old, new in zip(node.outputs, keras.tree.flatten(out), strict=True):
                tensors[id(old)] = new
        return [tensors[id(t)] for t in graph.outputs]


def flatten(model: keras.Model) -> Flattened:
    """`model` with every inlinable nested model's layers in one graph (see module doc).

    A model without nested models, or without a layer graph (subclassed), comes back as is.
    """
    import keras

    graph = layer_graph(model)
    if graph is None or not needs_flattening(model):
        return Flattened(model, (), ())
    inliner = _Inliner()
    flat_inputs = keras.tree.flatten(graph.input)
    fresh = {
        id(t): keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t._keras_history[0].name)
        for t in flat_inputs
    }
    inputs = keras.tree.map_structure(lambda t: fresh[id(t)], graph.input)
    outputs = inliner.run(graph, [fresh[id(t)] for t in graph.inputs], "", None)
    if not inliner.flattened:  # nested models, none inlinable: keep the original
        return Flattened(model, (), tuple(inliner.skipped))
    structure = keras.tree.pack_sequence_as(graph.output, outputs)
    flat = keras.Model(inputs, structure, name=model.name)
    for clone, original in inliner.pairs:
        clone.set_weights(original.get_weights())
    compile_like(flat, model)  # its own loss and optimizer, for fine-tuning
    return Flattened(flat, tuple(inliner.flattened), tuple(inliner.skipped))
