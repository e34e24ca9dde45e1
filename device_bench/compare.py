"""Where two runtimes part ways: every op's output of one model, on two runtimes, op by op.

The model is rewritten so that every op's first output is also a model output
(``graph_cut.Graph.with_all_outputs``); an interpreter must then produce each of them, so
XNNPACK cannot fuse an intermediate tensor away (it may still fuse inside one op, e.g. an
activation into its conv, which the converter has already done anyway). What it costs:
XNNPACK plans the rewritten graph with every tensor kept, which can change its choice of
kernels slightly; the final output of the rewritten model is compared with the original's
so a difference shows. Each op's error is measured as ai-edge-quantizer's ``validate``
does for its own files: the largest difference in quantization steps of that op's output
tensor (``None`` for float tensors) and the signal-to-noise ratio in dB of the dequantized
values.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.errors import ModelError, ModelRefusedError
from device_bench.graph_cut import Graph
from device_bench.inputs import fit_samples, to_model_dtype
from device_bench.model_file import check_model_file
from device_bench.runtime import Runtime, load_runtime
from device_bench.tensors import dequantize, quantization_of

# Runtimes may round differently by a step; more than this is where they part ways.
DIVERGENCE_STEPS = 2.0


@dataclass(frozen=True)
class RunSpec:
    """How one side of a comparison runs the model.

    Attributes:
        name: Label in messages, e.g. ``litert`` or ``litert-no-delegates``.
        xnnpack: Whether to keep the runtime's default delegates (XNNPACK).
        runtime: Runtime name, or ``None`` for the first installed.
        threads: Interpreter threads.
    """

    name: str
    xnnpack: bool = True
    runtime: str | None = None
    threads: int = 1


@dataclass(frozen=True)
class OpError:
    """How far one op's output on runtime B is from runtime A's, over all samples.

    Attributes:
        index: Position in execution order (``bedside-lite inspect`` numbering).
        op: Op name.
        dtype: Its output's dtype.
        max_steps: Largest difference in quantization steps (``None`` for float outputs).
        max_abs: Largest difference of the dequantized values.
        snr_db: Signal (A) to noise (B - A) ratio of the dequantized values, in dB
            (``inf`` when identical).
        differing: Fraction of output values that differ at all.
        local_max_steps: Largest difference in steps when the op alone runs on both
            runtimes fed the same inputs (A's): the op's own share of the error, apart from
            what it inherits from earlier ops (``None`` for float outputs or when an input
            is not exposed).
    """

    index: int
    op: str
    dtype: str
    max_steps: float | None
    max_abs: float
    snr_db: float
    differing: float
    local_max_steps: float | None = None

    def diverges(self, bound: float = DIVERGENCE_STEPS) -> bool:
        """Whether this op's output differs by more than ``bound`` steps."""
        return self.max_steps is not None and self.max_steps > bound

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form (``snr_db`` is ``null`` when infinite)."""
        return {
            "index": self.index,
            "op": self.op,
            "dtype": self.dtype,
            "max_steps": self.max_steps,
            "max_abs": self.max_abs,
            "snr_db": None if math.isinf(self.snr_db) else self.snr_db,
            "differing": self.differing,
            "local_max_steps": self.local_max_steps,
        }


def first_divergence(errors: Sequence[OpError], bound: float = DIVERGENCE_STEPS) -> OpError | None:
    """The first op, in execution order, whose output differs by more than ``bound`` steps."""
    return next((error for error in errors if error.diverges(bound)), None)


class _Side:
    """One runtime's interpreter of a model (the all-outputs model, or one op alone)."""

    def __init__(self, runtime: Runtime, spec: RunSpec, content: bytes) -> None:
        kwargs: dict[str, Any] = {"model_content": content, "num_threads": spec.threads}
        if not spec.xnnpack:
            kwargs["experimental_op_resolver_type"] = (
                runtime.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self.interpreter = runtime.interpreter_class(**kwargs)
            self.interpreter.allocate_tensors()
        except Exception as error:  # runtimes raise RuntimeError/ValueError
            raise ModelRefusedError(
                f"{spec.name} refused the model with every op's output exposed: "
                f"{type(error).__name__}: {error}"
            ) from error
        self.inputs = self.interpreter.get_input_details()
        self.input = self.inputs[0]
        self.outputs = self.interpreter.get_output_details()

    def run(self, *feeds: np.ndarray) -> list[np.ndarray]:
        for detail, value in zip(self.inputs, feeds, strict=True):
            self.interpreter.set_tensor(detail["index"], value)
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(o["index"])) for o in self.outputs]


class _Accumulator:
    """Running max steps, max abs difference, signal and noise energy of one op's output."""

    def __init__(self) -> None:
        self.max_steps: float | None = 0.0
        self.max_abs = 0.0
        self.signal = 0.0
        self.noise = 0.0
        self.differing = 0
        self.count = 0

    def add(
        self,
        a: np.ndarray,
        b: np.ndarray,
        detail: dict[str, Any],
        detail_a: dict[str, Any] | None = None,
    ) -> None:
        """Adds one sample's outputs; `detail` is B's tensor, `detail_a` A's when A is
        another model (e.g. the float32 file against its int8 one)."""
        quantization = quantization_of(detail)
        real_a = dequantize(a, quantization_of(detail_a or detail)).astype(np.float64)
        real_b = dequantize(b, quantization).astype(np.float64)
        if quantization.scale is None:
            self.max_steps = None
        elif self.max_steps is not None:
            if detail_a is None:  # one quantization: whole steps, exactly
                steps = np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)
            else:
                steps = np.abs(real_b - real_a) / quantization.scale
            self.max_steps = max(self.max_steps, float(np.round(steps.max(initial=0), 6)))
        diff = real_b - real_a
        self.max_abs = max(self.max_abs, float(np.abs(diff).max(initial=0.0)))
        self.signal += float(np.sum(real_a * real_a))
        self.noise += float(np.sum(diff * diff))
        self.differing += int(np.count_nonzero(a != b))
        self.count += a.size

    def snr_db(self) -> float:
        if self.noise == 0:
            return math.inf
        if self.signal == 0:
            return -math.inf
        return 10.0 * math.log10(self.signal / self.noise)


def compare_ops(
    path: str | os.PathLike[str], inputs: np.ndarray, a: RunSpec, b: RunSpec
) -> list[OpError]:
    """Runs a model on two runtimes with every op's output exposed and compares them.

    Args:
        path: A ``.tflite`` model with one input.
        inputs: Real-valued samples ``(N, ...)`` (quantized here for an integer input).
        a: The side taken as the reference (e.g. the primary runtime).
        b: The side compared with it.

    Returns:
        One error per op, in execution order.

    Raises:
        ModelError: The model has control flow or several inputs.
        ModelRefusedError: A runtime refused the rewritten model.
    """
    model_path = str(check_model_file(path))
    graph = Graph(Path(model_path).read_bytes(), model_path)
    content, positions = graph.with_all_outputs()
    runtime_a, runtime_b = load_runtime(a.runtime), load_runtime(b.runtime)
    side_a, side_b = _Side(runtime_a, a, content), _Side(runtime_b, b, content)
    samples = _samples(inputs, side_a.input, model_path)
    graph_input = graph.input_tensor
    exposed = {
        spec.outputs[0]: position for spec, position in zip(graph.ops, positions, strict=True)
    }
    locals_: list[tuple[_Side, _Side, list[int]] | None] = []
    for spec in graph.ops:
        feeds = [t for t in dict.fromkeys(spec.inputs) if not graph.is_constant(t)]
        if all(t in exposed or t == graph_input for t in feeds) and not spec.float_op:
            single = graph.single_op(spec.index)
            locals_.append((_Side(runtime_a, a, single), _Side(runtime_b, b, single), feeds))
        else:
            locals_.append(None)
    along = [_Accumulator() for _ in graph.ops]
    alone = [_Accumulator() for _ in graph.ops]
    for sample in samples:
        outs_a, outs_b = side_a.run(sample[None]), side_b.run(sample[None])
        values = {tensor: outs_a[position] for tensor, position in exposed.items()}
        values[graph_input] = sample[None]
        for op, position in enumerate(positions):
            detail = side_a.outputs[position]
            along[op].add(outs_a[position], outs_b[position], detail)
            pair = locals_[op]
            if pair is not None:
                inputs_of_op = [values[t] for t in pair[2]]
                alone[op].add(pair[0].run(*inputs_of_op)[0], pair[1].run(*inputs_of_op)[0], detail)
    return [
        OpError(
            index=spec.index,
            op=spec.op,
            dtype=spec.dtype,
            max_steps=acc.max_steps,
            max_abs=acc.max_abs,
            snr_db=acc.snr_db(),
            differing=acc.differing / max(acc.count, 1),
            local_max_steps=None if pair is None else local.max_steps,
        )
        for spec, acc, local, pair in zip(graph.ops, along, alone, locals_, strict=True)
    ]


def _samples(inputs: np.ndarray, detail: dict[str, Any], model_path: str) -> np.ndarray:
    shape = [int(d) for d in detail["shape"]]
    if shape and shape[0] != 1:
        raise ModelError(
            f"Model '{model_path}' has a fixed batch of {shape[0]}; per-op comparison runs "
            "one sample at a time and needs batch 1 or a dynamic batch."
        )
    samples = fit_samples(np.asarray(inputs), shape[1:], source="array", model=model_path)
    return to_model_dtype(samples, quantization_of(detail))


def compare_to_model(
    path: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    inputs: np.ndarray,
    spec: RunSpec,
) -> list[OpError]:
    """Every op's output of `path` (e.g. the int8 file) against the matching op of
    `reference` (the float32 file it was made from), on one runtime: where quantization
    loses what the float model computes. Ops match by position when both files hold the
    same op sequence, else by the name of the tensor they write (the converter names it
    after the Keras layer; QUANTIZE/DEQUANTIZE at int8 edges have no namesake and are left
    out). Steps are in `path`'s output quantization.

    Args:
        path: The model compared (one input).
        reference: The model it is compared with (same input, real-valued).
        inputs: Real-valued samples ``(N, ...)``.
        spec: The runtime both run on.

    Returns:
        One error per matched op of `path`, in its execution order.
    """
    graphs, sides, positions = [], [], []
    runtime = load_runtime(spec.runtime)
    for model in (reference, path):
        model_path = str(check_model_file(model))
        graph = Graph(Path(model_path).read_bytes(), model_path)
        content, where = graph.with_all_outputs()
        graphs.append(graph)
        sides.append(_Side(runtime, spec, content))
        positions.append(where)
    if [op.op for op in graphs[0].ops] == [op.op for op in graphs[1].ops]:
        # the same op sequence (a float file and its int8 with float edges kept inside):
        # ops match by position
        matched = list(zip(graphs[1].ops, positions[1], positions[0], strict=True))
    else:
        names = {
            graphs[0].tensor_name(op.outputs[0]): pos
            for op, pos in zip(graphs[0].ops, positions[0], strict=True)
        }
        matched = [
            (op, pos, names[name])
            for op, pos in zip(graphs[1].ops, positions[1], strict=True)
            if (name := graphs[1].tensor_name(op.outputs[0])) in names
        ]
    accumulators = [_Accumulator() for _ in matched]
    samples = [
        _samples(inputs, side.input, str(m))
        for side, m in zip(sides, (reference, path), strict=True)
    ]
    for sample_ref, sample in zip(*samples, strict=True):
        outs_ref, outs = sides[0].run(sample_ref[None]), sides[1].run(sample[None])
        for acc, (_, pos, ref_pos) in zip(accumulators, matched, strict=True):
            acc.add(outs_ref[ref_pos], outs[pos], sides[1].outputs[pos], sides[0].outputs[ref_pos])
    return [
        OpError(
            index=op.index,
            op=op.op,
            dtype=op.dtype,
            max_steps=acc.max_steps,
            max_abs=acc.max_abs,
            snr_db=acc.snr_db(),
            differing=acc.differing / max(acc.count, 1),
        )
        for (op, _, _), acc in zip(matched, accumulators, strict=True)
    ]
