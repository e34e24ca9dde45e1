"""A latency model of the target: what each layer costs as the target runtime runs it.

Structured pruning counts MACs; the device counts time, and a narrow int8 layer does not
run proportionally faster (fixed per-op cost, kernel tiles of 8-16 channels). This module
predicts a model's int8 latency from measured layer times, so the structured step can rank
its choices by measured time saved per unit of importance lost.

The approximation (documented in the report's `pruning.structured.latency.approximation`):

- Each MAC-counted layer call (Conv/Depthwise/Separable/Dense) of the unpruned model is
  measured alone, as a one-layer int8 TFLite model on the target runtime, at its own
  widths and at `ANCHOR_FRACTIONS` of them (input and output channels scaled together).
  Its time at other widths is interpolated linearly in its work fraction u (c_in * c_out /
  (C_in * C_out); c / C for a depthwise layer), and held at the narrowest anchor's time
  below it (narrow layers do not get faster than that).
- Everything else (the input front such as Rescaling/Resizing, the quantize/dequantize
  edges, the invoke itself, activations, Add, pooling) is the measured whole-model time of
  the unpruned int8 file minus the sum of its layers, held constant. The element-wise ops
  between layers do shrink with the channels, so the prediction errs on the slow side.
- Measurements are cached on disk by layer kind, shapes, dtype and runtime
  (`BEDSIDE_LATENCY_CACHE`, default ~/.cache/bedside-lite/latency/), so a second build on
  the same target measures nothing again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from pipeline.models.graph import call_nodes
from pipeline.prune.structured.nodes import DEPTHWISE, PRODUCERS, functional, is_kind

if TYPE_CHECKING:
    import keras

    from pipeline.prune.structured.branches import ResidualBranch
    from pipeline.prune.structured.graph import ChannelGraph, Channels
    from pipeline.prune.structured.planning import ChannelPlan

ANCHOR_FRACTIONS = (1.0, 0.75, 0.5, 0.25, 0.125)
CACHE_ENV = "BEDSIDE_LATENCY_CACHE"
APPROXIMATION = (
    "sum over Conv/Dense layers of the one-layer int8 time measured on the target at "
    f"width fractions {', '.join(f'{f:g}' for f in ANCHOR_FRACTIONS)} (interpolated in "
    "c_in*c_out, held below the narrowest), plus the unpruned file's remaining time "
    "held constant"
)


@dataclass(frozen=True)
class LayerShape:
    """One layer call as the latency model sees it: its kind and static shapes (no batch)."""

    kind: str  # Keras class name: Conv2D, DepthwiseConv2D, Dense, ...
    input_shape: tuple[int, ...]
    out_channels: int
    kernel_size: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    padding: str = "valid"
    depth_multiplier: int = 1

    @property
    def in_channels(self) -> int:
        return self.input_shape[-1]

    @property
    def depthwise(self) -> bool:
        return self.kind in DEPTHWISE

    def at(self, c_in: int, c_out: int) -> LayerShape:
        """The same layer with other channel counts (a depthwise layer follows c_in)."""
        c_out = c_in * self.depth_multiplier if self.depthwise else c_out
        return replace(self, input_shape=(*self.input_shape[:-1], c_in), out_channels=c_out)

    def work(self) -> float:
        """Proportional to the layer's MACs at these widths (spatial size fixed)."""
        return float(self.in_channels if self.depthwise else self.in_channels * self.out_channels)

    def key(self, runtime: str, dtype: str = "int8") -> str:
        shape = "x".join(str(d) for d in self.input_shape)
        kernel = "x".join(str(k) for k in self.kernel_size)
        strides = "x".join(str(s) for s in self.strides)
        return (
            f"{runtime}|{dtype}|{self.kind}|in={shape}|out={self.out_channels}|k={kernel}"
            f"|s={strides}|{self.padding}|m={self.depth_multiplier}"
        )


class Profiler(Protocol):
    """Measures int8 latency on the target runtime (the real one converts and profiles
    through pipeline/device; tests pass a fake)."""

    runtime: str

    def layers_ms(self, shapes: Sequence[LayerShape]) -> list[float]:
        """Time of each shape as a one-layer int8 model, in ms."""
        ...

    def models_ms(self, models: Sequence[keras.Model]) -> list[float]:
        """Time of each whole model's int8 file, in ms, all timed together in interleaved
        runs (so that their ratios hold whatever else the target is doing)."""
        ...


def _tuple(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),)


def layer_shapes(model: keras.Model) -> dict[str, LayerShape]:
    """Every single-call Conv/Dense/Depthwise layer of a flat functional model, by name."""
    out = {}
    for node in call_nodes(functional(model)):
        layer = node.operation
        kinds = (*PRODUCERS, *DEPTHWISE)
        if node.is_input or layer is None or not is_kind(layer, kinds):
            continue
        if len(node.input_tensors) != 1 or len(node.outputs) != 1:
            continue
        dims = [d for d in node.input_tensors[0].shape[1:]]
        if any(d is None for d in dims) or node.outputs[0].shape[-1] is None:
            continue
        out[layer.name] = LayerShape(
            kind=type(layer).__name__,
            input_shape=tuple(int(d) for d in dims),
            out_channels=int(node.outputs[0].shape[-1]),
            kernel_size=_tuple(getattr(layer, "kernel_size", ())),
            strides=_tuple(getattr(layer, "strides", ())),
            padding=str(getattr(layer, "padding", "valid")),
            depth_multiplier=int(getattr(layer, "depth_multiplier", 1) or 1),
        )
    return out


def cache_dir() -> Path:
    """Where measured layer times live (`BEDSIDE_LATENCY_CACHE` overrides)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else Path.home() / ".cache" / "bedside-lite" / "latency"


class LayerTimes:
    """Measured one-layer times by `LayerShape.key`, read from and written to a JSON cache."""

    def __init__(self, profiler: Profiler, directory: Path | None = None) -> None:
        self.profiler = profiler
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in profiler.runtime)
        self.path = (directory or cache_dir()) / f"{name}.json"
        self.times: dict[str, float] = {}
        if self.path.is_file():
            self.times = {k: float(v) for k, v in json.loads(self.path.read_text()).items()}
        self.measured = 0  # shapes measured by this instance (0: all from the cache)

    def ms(self, shapes: Sequence[LayerShape]) -> list[float]:
        """Time of every shape; the ones not cached are measured in one profiler call."""
        keys = [s.key(self.profiler.runtime) for s in shapes]
        missing = {k: s for k, s in zip(keys, shapes, strict=True) if k not in self.times}
        if missing:
            times = self.profiler.layers_ms(list(missing.values()))
            self.times.update(zip(missing, (float(t) for t in times), strict=True))
            self.measured += len(missing)
            self._save()
        return [self.times[k] for k in keys]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}")
        partial.write_text(json.dumps(self.times, indent=0, sort_keys=True))
        partial.replace(self.path)


@dataclass(frozen=True)
class _Curve:
    """One layer's measured time against its work fraction."""

    full: LayerShape
    work: np.ndarray  # ascending work fractions of the anchors
    ms: np.ndarray

    def at(self, shape: LayerShape) -> float:
        u = shape.work() / max(self.full.work(), 1.0)
        return float(np.interp(u, self.work, self.ms))


def _anchor(shape: LayerShape, fraction: float) -> LayerShape:
    def scaled(c: int) -> int:
        return max(1, int(round(c * fraction)))

    return shape.at(scaled(shape.in_channels), scaled(shape.out_channels))


class LatencyModel:
    """Predicted int8 latency of `original` and of models pruned from it (by layer name).

    With `base` (the latency model of the same model at its own map sizes) `original` is
    that model with other spatial sizes (a smaller Resizing front): each layer's full-width
    time is measured at its new shape and `base`'s curve scaled to it, the remaining time
    is `original`'s own int8 file less its layers, and `unpruned_ms` (what speedups divide)
    stays `base`'s: the unpruned file as the user has it. `measured_ms`, when given, is
    `original`'s whole int8 time from a run shared with the other sizes (the search times
    every size's file in the same interleaved runs, so the speedups do not mix two
    moments).
    """

    def __init__(
        self,
        original: keras.Model,
        times: LayerTimes,
        base: LatencyModel | None = None,
        measured_ms: float | None = None,
    ) -> None:
        self.runtime = times.profiler.runtime
        self.times = times
        shapes = layer_shapes(original)
        self.curves = _scaled(shapes, base, times) if base else _measured(shapes, times)
        if measured_ms is None:  # `original`'s int8 file (given: timed beside others)
            measured_ms = float(times.profiler.models_ms([original])[0])
        self.unpruned_ms: float = base.unpruned_ms if base else measured_ms
        self.layers_ms = sum(c.at(c.full) for c in self.curves.values())
        self.rest_ms = max(0.0, measured_ms - self.layers_ms)

    def layer_ms(self, name: str, c_in: int | None = None, c_out: int | None = None) -> float:
        """Predicted time of layer `name` at these widths (its own where None)."""
        curve = self.curves.get(name)
        if curve is None:
            return 0.0
        full = curve.full
        return curve.at(full.at(c_in or full.in_channels, c_out or full.out_channels))

    def predict(self, shapes: dict[str, LayerShape]) -> float:
        """Predicted time of a model whose layers have these shapes (by name)."""
        layers = sum(self.layer_ms(n, s.in_channels, s.out_channels) for n, s in shapes.items())
        return layers + self.rest_ms

    def predict_model(self, model: keras.Model) -> float:
        return self.predict(layer_shapes(model))

    def predict_plan(self, model: keras.Model, plan: ChannelPlan | None) -> float:
        """Predicted time of `model` rebuilt with `plan`, without rebuilding it."""
        shapes = layer_shapes(model)
        if plan is None:
            return self.predict(shapes)
        roles = plan.graph.roles

        def width(channels: Channels) -> int:
            kept = sum(plan.width(g) for g in channels.groups)
            return kept * channels.flat if channels.flat else kept

        new = {}
        for name, shape in shapes.items():
            role = roles.get(name)
            if role is None or not role.inputs or role.output is None:
                new[name] = shape
                continue
            new[name] = shape.at(width(role.inputs[0]), width(role.output))
        return self.predict(new)

    def channel_costs(self, graph: ChannelGraph) -> dict[int, float]:
        """Measured time saved per channel removed from each prunable group: the layers
        producing or reading the group at full width minus at half its width."""
        costs = {}
        for gid in graph.prunable():
            saved = 0.0
            for name, role in graph.roles.items():
                if name not in self.curves or role.output is None or not role.inputs:
                    continue
                full = self.curves[name].full
                c_in = _less(graph, role.inputs[0], gid, full.in_channels)
                c_out = _less(graph, role.output, gid, full.out_channels)
                if (c_in, c_out) != (full.in_channels, full.out_channels):
                    saved += self.layer_ms(name) - self.layer_ms(name, c_in, c_out)
            costs[gid] = max(saved, 0.0) / max(graph.size(gid) / 2, 1.0)
        return costs

    def branch_ms(self, branch: ResidualBranch) -> float:
        """Measured time of a residual branch's layers (what dropping it saves, roughly)."""
        return sum(self.layer_ms(name) for name in branch.layers)


def _measured(shapes: dict[str, LayerShape], times: LayerTimes) -> dict[str, _Curve]:
    """Each layer's time at the `ANCHOR_FRACTIONS` of its widths, measured in one batch."""
    anchors = {n: [_anchor(s, f) for f in ANCHOR_FRACTIONS] for n, s in shapes.items()}
    ms = times.ms([a for group in anchors.values() for a in group])
    curves = {}
    for i, (name, group) in enumerate(anchors.items()):
        span = ms[i * len(ANCHOR_FRACTIONS) : (i + 1) * len(ANCHOR_FRACTIONS)]
        full = max(shapes[name].work(), 1.0)
        measured = sorted({a.work() / full: t for a, t in zip(group, span, strict=True)}.items())
        curves[name] = _Curve(
            shapes[name], np.array([u for u, _ in measured]), np.array([t for _, t in measured])
        )
    return curves


def _scaled(
    shapes: dict[str, LayerShape], base: LatencyModel, times: LayerTimes
) -> dict[str, _Curve]:
    """`base`'s curves at new shapes: the full width measured, the curve scaled to it
    (layers `base` does not know get all their anchors measured)."""
    known = {n: s for n, s in shapes.items() if n in base.curves}
    curves = _measured({n: s for n, s in shapes.items() if n not in known}, times)
    for (name, shape), ms in zip(known.items(), times.ms(list(known.values())), strict=True):
        old = base.curves[name]
        ratio = ms / max(old.at(old.full), 1e-9)
        curves[name] = _Curve(shape, old.work, old.ms * ratio)
    return curves


def _less(graph: ChannelGraph, channels: Channels, gid: int, width: int) -> int:
    """`width` with half of group `gid`'s channels gone from `channels` (if it holds them)."""
    half = sum(graph.size(g) // 2 for g in channels.groups if graph.find(g) == gid)
    return width - half * (channels.flat or 1)
