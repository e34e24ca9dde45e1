"""Measures one model in this process: init time, latency and memory.

``prepare_model`` does everything up to the timed runs and records resident
memory after each step; ``PreparedModel.time_invokes`` (or ``time_into``, for
a preallocated buffer) runs the timed invokes.
The isolated (subprocess) benchmark drives the same two steps from a child
process, so numbers mean the same whichever way they were taken.

Latency is the duration of ``interpreter.invoke()`` alone, measured with
``time.perf_counter_ns``; the input tensor is set once, before the runs, as a
device that re-uses its input buffer would do.
"""

from __future__ import annotations

import array
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.compiled import api_runtime
from device_bench.errors import InputDataError
from device_bench.inputs import fit_samples, load_input_file, to_model_dtype
from device_bench.memory import sample_rss
from device_bench.model_file import check_model_file
from device_bench.report import InputInfo, MemoryReport, ModelReport, Status
from device_bench.runner import model_io
from device_bench.runtime import load_interpreter
from device_bench.settings import BenchSettings
from device_bench.stats import LatencyStats
from device_bench.tensors import Quantization, random_input, tensor_nbytes

_NS_PER_MS = 1e6


def _rss_mb() -> float | None:
    sample = sample_rss()
    return sample.rss_mb if sample else None


def peak_rss_mb() -> float | None:
    """Returns this process's peak resident memory in MiB, if known."""
    sample = sample_rss()
    return sample.peak_mb if sample else None


def arena_estimate(interpreter: Any) -> int | None:
    """Estimates the tensor arena: bytes of all tensors that are not constants.

    A tensor counts when it is a model input or the output of an op, i.e.
    everything but weights and other constants. This over-estimates the real
    arena, whose planner lets tensors with disjoint lifetimes share memory, and
    misses kernel scratch buffers and delegate-internal buffers: read it as
    "activation bytes", a size to compare between models, not an exact arena.

    Args:
        interpreter: An allocated interpreter.

    Returns:
        The estimate in bytes, or ``None`` when the runtime does not expose op
        details.
    """
    try:
        ops = interpreter._get_ops_details()  # the only graph view offered
        details = {int(d["index"]): d for d in interpreter.get_tensor_details()}
        produced = {int(d["index"]) for d in interpreter.get_input_details()}
    except Exception:  # private API; absent or failing on some runtimes
        return None
    for op in ops:
        produced.update(int(i) for i in op["outputs"] if int(i) >= 0)
    return sum(
        tensor_nbytes(details[i]["shape"], details[i]["dtype"]) for i in produced if i in details
    )


@dataclass(frozen=True)
class Setup:
    """What was measured before the timed runs.

    Attributes:
        runtime: Runtime name.
        runtime_version: Runtime version.
        python: Version of the Python that measured.
        threads: Interpreter threads.
        xnnpack: Whether default delegates are in use.
        note: Why the setup differs from what was asked for, else ``None``.
        file_bytes: Size of the model file.
        input: The input the model runs on.
        init_ms: Interpreter creation plus ``allocate_tensors``.
        first_invoke_ms: The first invoke after allocation.
        warmup_mean_ms: Mean of the warm-up invokes (first invoke if none).
        memory: RSS readings up to allocation (no peak yet).
    """

    runtime: str
    runtime_version: str
    python: str
    threads: int
    xnnpack: bool
    note: str | None
    file_bytes: int
    input: InputInfo
    init_ms: float
    first_invoke_ms: float
    warmup_mean_ms: float
    memory: MemoryReport

    def to_json(self) -> dict[str, Any]:
        """Returns a JSON form (sent from the measuring child to the parent)."""
        return {
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "python": self.python,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "note": self.note,
            "file_bytes": self.file_bytes,
            "input": self.input.to_json(),
            "init_ms": self.init_ms,
            "first_invoke_ms": self.first_invoke_ms,
            "warmup_mean_ms": self.warmup_mean_ms,
            "memory": self.memory.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Setup:
        """Inverse of ``to_json``."""
        fields = dict(data)
        fields["input"] = InputInfo.from_json(data["input"])
        fields["memory"] = MemoryReport.from_json(data["memory"])
        return cls(**fields)

    def report(
        self, path: str, durations_ns: Sequence[int], peak_rss_mb: float | None
    ) -> ModelReport:
        """Builds the model's report from this setup and its timed runs.

        Args:
            path: Model path as given.
            durations_ns: Durations of the timed invokes.
            peak_rss_mb: Peak RSS after the runs.

        Returns:
            An ``ok`` report.
        """
        return ModelReport(
            path=path,
            status=Status.OK,
            runtime=self.runtime,
            runtime_version=self.runtime_version,
            threads=self.threads,
            xnnpack=self.xnnpack,
            note=self.note,
            file_bytes=self.file_bytes,
            input=self.input,
            init_ms=self.init_ms,
            first_invoke_ms=self.first_invoke_ms,
            runs=len(durations_ns),
            latency_ms=LatencyStats.from_ns(durations_ns),
            memory=self.memory.with_peak(peak_rss_mb),
            python=self.python,
        )

    def partial_report(self, path: str, status: Status, reason: str) -> ModelReport:
        """Builds a report for a model whose runs did not finish.

        Args:
            path: Model path as given.
            status: Why not.
            reason: Explanation.

        Returns:
            A report with the setup's numbers and no latency.
        """
        return replace(
            self.report(path, [0], None),
            status=status,
            reason=reason,
            runs=0,
            latency_ms=None,
        )


def duration_buffer(capacity: int) -> array.array[int]:
    """Returns a zero-filled int64 buffer for ``time_into``.

    Durations live in a flat int64 array (8 bytes each) rather than a list of
    Python ints (about 36 bytes each): a trivial model runs a million times a
    second, and the harness's own memory must not pass for the model's.

    Args:
        capacity: Number of durations it holds.

    Returns:
        The buffer, with every page already touched.
    """
    return array.array("q", bytes(8 * capacity))


class PreparedModel:
    """An allocated, warmed-up interpreter ready for timed invokes."""

    def __init__(self, interpreter: Any, setup: Setup) -> None:
        self._interpreter = interpreter
        self.setup = setup

    def time_into(self, buffer: array.array[int], count: int) -> int:
        """Times ``count`` invokes, writing each duration (ns) into ``buffer``.

        Args:
            buffer: Destination, e.g. from ``duration_buffer``.
            count: Number of invokes, at most ``len(buffer)``.

        Returns:
            Wall time of the whole loop in nanoseconds.
        """
        if not 0 < count <= len(buffer):
            raise ValueError(f"count must be in 1..{len(buffer)}; received {count}.")
        invoke = self._interpreter.invoke
        clock = time.perf_counter_ns
        start = clock()
        for index in range(count):
            before = clock()
            invoke()
            buffer[index] = clock() - before
        return clock() - start

    def time_invokes(self, runs: int, min_seconds: float = 0.0) -> array.array[int]:
        """Times invokes until at least ``runs`` ran and ``min_seconds`` passed.

        Args:
            runs: Minimum number of invokes (at least 1).
            min_seconds: Minimum wall time of the timed loop.

        Returns:
            Duration of each invoke in nanoseconds.
        """
        invoke = self._interpreter.invoke
        clock = time.perf_counter_ns
        durations: array.array[int] = array.array("q")
        append = durations.append
        min_ns = int(min_seconds * 1e9)
        start = clock()
        while True:
            before = clock()
            invoke()
            after = clock()
            append(after - before)
            if len(durations) >= runs and after - start >= min_ns:
                return durations


def _bench_input(
    path: str, settings: BenchSettings, shape: tuple[int, ...], quantization: Quantization
) -> tuple[np.ndarray, str]:
    if settings.input_path is None:
        values = random_input(shape, quantization.dtype, seed=settings.seed)
        return values, "random"
    source = f"'{settings.input_path}'"
    samples = fit_samples(
        load_input_file(settings.input_path), shape[1:], source=source, model=path
    )
    if samples.shape[0] < shape[0]:
        raise InputDataError(
            f"Input {source} holds {samples.shape[0]} sample(s); model '{path}' has a fixed "
            f"batch of {shape[0]}. Pass at least {shape[0]} samples."
        )
    return to_model_dtype(samples[: shape[0]], quantization), "file"


def _exercise_harness() -> None:
    # Pages of code touched for the first time count as resident memory. Running
    # the harness's own numpy paths once before the first reading makes them
    # part of the baseline rather than of the model's share (~0.3 MiB).
    for dtype in ("int8", "float32"):
        random_input((1, 2), dtype)


def prepare_model(path: str | os.PathLike[str], settings: BenchSettings) -> PreparedModel:
    """Loads, allocates, first-invokes and warms up a model, recording memory.

    Args:
        path: Path of a ``.tflite`` model with one input and one output.
        settings: Measurement settings (runs and timeout are not used here).

    Returns:
        The prepared model.

    Raises:
        ModelFileError: ``path`` is not a TFLite file.
        ModelRefusedError: The interpreter raised while loading or allocating.
        ModelError: The model has several inputs or outputs.
        InputDataError: The input file does not fit the model.
        RuntimeUnavailableError: No (or not the requested) runtime is installed.
    """
    _exercise_harness()
    rss_start = _rss_mb()
    model_path = str(check_model_file(path))
    file_bytes = Path(model_path).stat().st_size
    runtime = api_runtime(settings.runtime, settings.api, settings.accelerator)
    rss_after_import = _rss_mb()

    after_create: list[float | None] = []
    loaded = load_interpreter(
        runtime,
        model_path,
        threads=settings.threads,
        xnnpack=settings.xnnpack,
        after_create=lambda: after_create.append(_rss_mb()),
    )
    rss_after_allocate = _rss_mb()
    interpreter = loaded.interpreter
    io = model_io(interpreter, model_path)
    values, source = _bench_input(model_path, settings, io.input_shape, io.input_quantization)
    interpreter.set_tensor(io.input_index, values)

    start = time.perf_counter_ns()
    interpreter.invoke()
    first_invoke_ns = time.perf_counter_ns() - start
    warmup_ns = []
    for _ in range(settings.warmup):
        start = time.perf_counter_ns()
        interpreter.invoke()
        warmup_ns.append(time.perf_counter_ns() - start)

    quantization = io.input_quantization
    setup = Setup(
        runtime=runtime.name,
        runtime_version=runtime.version,
        python=platform.python_version(),
        threads=settings.threads,
        xnnpack=loaded.xnnpack,
        note=loaded.note("measured"),
        file_bytes=file_bytes,
        input=InputInfo(
            shape=io.input_shape,
            dtype=quantization.dtype,
            scale=quantization.scale,
            zero_point=quantization.zero_point,
            source=source,
        ),
        init_ms=loaded.init_ns / _NS_PER_MS,
        first_invoke_ms=first_invoke_ns / _NS_PER_MS,
        # Plain arithmetic: a first np.mean call maps ~1 MiB of numpy code pages.
        warmup_mean_ms=sum(warmup_ns or [first_invoke_ns]) / max(len(warmup_ns), 1) / _NS_PER_MS,
        memory=MemoryReport(
            rss_start_mb=rss_start,
            rss_after_import_mb=rss_after_import,
            # The last construction is the one kept (after a delegate fallback).
            rss_after_interpreter_mb=after_create[-1] if after_create else None,
            rss_after_allocate_mb=rss_after_allocate,
            arena_bytes=arena_estimate(interpreter),
        ),
    )
    return PreparedModel(interpreter, setup)


def measure_model(path: str | os.PathLike[str], settings: BenchSettings) -> ModelReport:
    """Measures one model in this process.

    Memory numbers are this process's: measure each model in a fresh process
    (``isolate.bench_models``) for numbers that belong to that model alone.

    Args:
        path: Path of a ``.tflite`` model.
        settings: Measurement settings; ``timeout_s``, ``cpu`` and ``python``
            apply to isolated runs only and are ignored here.

    Returns:
        The model's report.

    Raises:
        DeviceBenchError: See ``prepare_model``.
    """
    prepared = prepare_model(path, settings)
    durations = prepared.time_invokes(settings.runs, settings.min_seconds)
    return prepared.setup.report(str(path), durations, peak_rss_mb())
