"""Per-op latency: each op cut out as a model of its own, timed like the whole model.

ai-edge-litert exposes no op profiler to Python, so each op of the main subgraph is cut
out of the flatbuffer (``graph_cut.Graph.single_op``) and timed on the same runtime,
delegate choice and thread count as the whole model, fed the very values it reads in a
run of the whole model (captured once with the reference kernels and
``experimental_preserve_all_tensors``, so shape-reading ops get real shapes). Each timed
invoke of a one-op model also pays the interpreter's per-invoke overhead, which the whole
model pays once; it is measured on an empty model (no op; its input is its output;
timed before, halfway and after the ops, the median taken) and subtracted from every
op's p50. The per-op p50s then add up to about the whole model's p50, measured in the
same run: ``sum_to_whole`` says how closely.

What a one-op model cannot show: fusion across ops inside a delegate (XNNPACK plans the
whole graph at once) and cache effects between neighbouring ops; both show up as
``sum_to_whole`` away from 1. A model whose whole invoke is a few times the overhead
(a few microseconds) reads far from 1: its per-op numbers are mostly noise.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.errors import ModelRefusedError
from device_bench.graph_cut import QUANTIZE_OPS, Graph
from device_bench.inputs import fit_samples, load_input_file, to_model_dtype
from device_bench.model_file import check_model_file
from device_bench.runtime import Runtime, load_interpreter, load_runtime
from device_bench.settings import BenchSettings
from device_bench.tensors import quantization_of, random_input

# Each cut model is timed for at least this long (or settings.min_seconds if shorter),
# and at least settings.runs invokes: enough for a stable p50 of a sub-millisecond op.
OP_MIN_SECONDS = 0.1
TOP_OPS = 5


@dataclass(frozen=True)
class OpTiming:
    """One op's latency.

    Attributes:
        index: Position in execution order (``bedside-lite inspect`` numbering).
        op: Op name, e.g. ``CONV_2D``.
        dtype: Dtype of its first output.
        float_op: Whether it computes in float (left in float in a quantized model).
        p50_ms: Median invoke time of the op alone, less the empty-invoke overhead.
        share: ``p50_ms`` over the sum of every op's ``p50_ms``.
    """

    index: int
    op: str
    dtype: str
    float_op: bool
    p50_ms: float
    share: float

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form used in reports."""
        return {
            "index": self.index,
            "op": self.op,
            "p50_ms": self.p50_ms,
            "share": self.share,
            "dtype": self.dtype,
            "float": self.float_op,
        }


@dataclass(frozen=True)
class ModelProfile:
    """Per-op latency of one model, with the whole model measured in the same run.

    Attributes:
        ops: Every op, in execution order.
        whole_p50_ms: The whole model's p50 in this run.
        overhead_ms: p50 of an empty invoke, subtracted from each op.
        xnnpack: Whether default delegates were in use (as for the whole model).
        runs_per_op: Minimum timed invokes of each cut model.
    """

    ops: tuple[OpTiming, ...]
    whole_p50_ms: float
    overhead_ms: float
    xnnpack: bool
    runs_per_op: int

    @property
    def sum_ms(self) -> float:
        """Sum of the per-op p50s."""
        return sum(op.p50_ms for op in self.ops)

    @property
    def sum_to_whole(self) -> float | None:
        """``sum_ms`` over ``whole_p50_ms`` (1 when the cut models account for all time)."""
        return self.sum_ms / self.whole_p50_ms if self.whole_p50_ms > 0 else None

    def share_of(self, *, quantize: bool = False, float_ops: bool = False) -> float:
        """Share of the time in QUANTIZE/DEQUANTIZE (``quantize``) or in float ops."""
        return sum(
            op.share
            for op in self.ops
            if (quantize and op.op in QUANTIZE_OPS) or (float_ops and op.float_op)
        )

    def top(self, count: int = TOP_OPS) -> list[OpTiming]:
        """The ``count`` ops with the largest share, largest first."""
        return sorted(self.ops, key=lambda op: (-op.p50_ms, op.index))[:count]

    def to_json(self) -> dict[str, Any]:
        """Returns the report's ``profile`` block."""
        return {
            "method": "single-op models cut from the flatbuffer, each p50 less the p50 of "
            "an empty invoke",
            "whole_p50_ms": self.whole_p50_ms,
            "overhead_ms": self.overhead_ms,
            "sum_ms": self.sum_ms,
            "sum_to_whole": self.sum_to_whole,
            "quantize_share": self.share_of(quantize=True),
            "float_share": self.share_of(float_ops=True),
            "xnnpack": self.xnnpack,
            "runs_per_op": self.runs_per_op,
            "top": [op.index for op in self.top()],
            "ops": [op.to_json() for op in self.ops],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelProfile:
        """Inverse of ``to_json``."""
        ops = tuple(
            OpTiming(
                index=o["index"],
                op=o["op"],
                dtype=o["dtype"],
                float_op=o["float"],
                p50_ms=o["p50_ms"],
                share=o["share"],
            )
            for o in data["ops"]
        )
        return cls(
            ops=ops,
            whole_p50_ms=data["whole_p50_ms"],
            overhead_ms=data["overhead_ms"],
            xnnpack=data["xnnpack"],
            runs_per_op=data["runs_per_op"],
        )


def tensor_values(runtime: Runtime, data: bytes, model_input: np.ndarray) -> Any:
    """Runs a model with the reference kernels, keeping every tensor readable.

    Args:
        runtime: The runtime.
        data: The model's bytes.
        model_input: Its one input, in the input's dtype.

    Returns:
        The invoked interpreter (``get_tensor(i)`` reads tensor ``i`` of the main subgraph).
    """
    interpreter = runtime.interpreter_class(
        model_content=data,
        experimental_op_resolver_type=runtime.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], model_input)
    interpreter.invoke()
    return interpreter


def _p50_ms(interpreter: Any, runs: int, min_seconds: float) -> float:
    import time

    invoke = interpreter.invoke
    clock = time.perf_counter_ns
    for _ in range(3):  # warm-up: first invokes allocate and plan
        invoke()
    durations = []
    start = clock()
    while True:
        before = clock()
        invoke()
        after = clock()
        durations.append(after - before)
        if len(durations) >= runs and after - start >= min_seconds * 1e9:
            return statistics.median(durations) / 1e6


class _Timer:
    """Times model bytes on one runtime setup, through files in a private folder."""

    def __init__(self, runtime: Runtime, settings: BenchSettings, folder: str) -> None:
        self._runtime = runtime
        self._settings = settings
        self._folder = folder
        self.xnnpack = settings.xnnpack
        self.min_seconds = min(settings.min_seconds, OP_MIN_SECONDS)

    def p50_ms(self, name: str, data: bytes, inputs: Sequence[np.ndarray]) -> float:
        path = os.path.join(self._folder, f"{name}.tflite")
        Path(path).write_bytes(data)
        loaded = load_interpreter(
            self._runtime,
            path,
            threads=self._settings.threads,
            xnnpack=self.xnnpack,
            delegate_fallback=False,
        )
        interpreter = loaded.interpreter
        for detail, value in zip(interpreter.get_input_details(), inputs, strict=True):
            interpreter.set_tensor(detail["index"], value)
        try:
            return _p50_ms(interpreter, self._settings.runs, self.min_seconds)
        except Exception as error:  # kernels raise RuntimeError/ValueError
            raise ModelRefusedError(
                f"{self._runtime.name} failed to run {name}: {type(error).__name__}: {error}"
            ) from error


def _model_input(path: str, settings: BenchSettings, detail: dict[str, Any]) -> np.ndarray:
    quantization = quantization_of(detail)
    shape = tuple(int(d) for d in detail["shape"])
    if settings.input_path is None:
        return random_input(shape, quantization.dtype, seed=settings.seed)
    samples = fit_samples(
        load_input_file(settings.input_path), shape[1:], source=settings.input_path, model=path
    )
    return to_model_dtype(samples[: shape[0]], quantization)


def profile_model(path: str | os.PathLike[str], settings: BenchSettings) -> ModelProfile:
    """Measures each op of a model and the whole model in this process.

    Args:
        path: A ``.tflite`` model with one input.
        settings: The benchmark's settings (runtime, threads, delegates, input, runs).

    Returns:
        The profile.

    Raises:
        DeviceBenchError: The file, runtime or model cannot be used (see ``prepare_model``).
    """
    model_path = str(check_model_file(path))
    data = Path(model_path).read_bytes()
    graph = Graph(data, model_path)
    runtime = load_runtime(settings.runtime)
    probe = runtime.interpreter_class(model_content=data)
    model_input = _model_input(model_path, settings, probe.get_input_details()[0])
    values = tensor_values(runtime, data, model_input)
    with tempfile.TemporaryDirectory(prefix="device_bench_profile_") as folder:
        timer = _Timer(runtime, settings, folder)
        whole = load_interpreter(
            runtime, model_path, threads=settings.threads, xnnpack=settings.xnnpack
        )
        # Cut ops run as the whole model did, also after a delegate fallback.
        timer.xnnpack = whole.xnnpack
        whole.interpreter.set_tensor(whole.interpreter.get_input_details()[0]["index"], model_input)
        whole_ms = _p50_ms(whole.interpreter, settings.runs, timer.min_seconds)
        empty = graph.empty_model()
        # the overhead is timed before, halfway and after the ops (median of the three), so
        # a passing load on a shared machine moves it less than any one reading
        overheads = [timer.p50_ms("empty", empty, [np.zeros(1, np.float32)])]
        gross: list[float] = []
        for spec in graph.ops:
            feeds = [
                values.get_tensor(t) for t in dict.fromkeys(spec.inputs) if not graph.is_constant(t)
            ]
            gross.append(timer.p50_ms(f"op{spec.index}", graph.single_op(spec.index), feeds))
            if len(gross) == (len(graph.ops) + 1) // 2:
                overheads.append(timer.p50_ms("empty", empty, [np.zeros(1, np.float32)]))
        overheads.append(timer.p50_ms("empty", empty, [np.zeros(1, np.float32)]))
    overhead = statistics.median(overheads)
    raw = [max(ms - overhead, 0.0) for ms in gross]
    total = sum(raw) or 1.0
    ops = tuple(
        OpTiming(spec.index, spec.op, spec.dtype, spec.float_op, ms, ms / total)
        for spec, ms in zip(graph.ops, raw, strict=True)
    )
    return ModelProfile(ops, whole_ms, overhead, timer.xnnpack, settings.runs)


def profile_isolated(path: str, settings: BenchSettings) -> ModelProfile | str:
    """Profiles a model in a child process (``settings.python``), like the bench does.

    Args:
        path: The model.
        settings: The benchmark's settings.

    Returns:
        The profile, or why there is none (the child's last error line).
    """
    import dataclasses
    import json
    import subprocess

    from device_bench.child import run_child

    command = [
        settings.python_executable,
        "-m",
        "device_bench",
        "_profile",
        "--settings",
        json.dumps(dataclasses.asdict(settings)),
        path,
    ]
    try:
        process = run_child(command, settings.timeout_s)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"profiling did not finish: {type(error).__name__}: {error}"
    stdout = process.stdout.decode(errors="replace")
    if process.returncode != 0:
        stderr = process.stderr.decode(errors="replace")
        lines = (stderr or stdout).strip().splitlines() or ["no output"]
        return f"profiling failed (exit {process.returncode}): {lines[-1]}"
    return ModelProfile.from_json(json.loads(stdout))


def profile_main(argv: Sequence[str]) -> int:
    """``python -m device_bench _profile --settings JSON MODEL``: prints the profile JSON."""
    import argparse
    import json
    import sys

    from device_bench.errors import DeviceBenchError

    parser = argparse.ArgumentParser(prog="python -m device_bench _profile")
    parser.add_argument("--settings", required=True)
    parser.add_argument("model")
    args = parser.parse_args(list(argv))
    settings = BenchSettings(**json.loads(args.settings))
    try:
        profile = profile_model(args.model, settings)
    except DeviceBenchError as error:
        print(f"device_bench: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(profile.to_json()))
    return 0
