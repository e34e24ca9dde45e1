"""What a firmware engineer asks before flashing: ``python -m device_bench micro MODEL``.

For one ``.tflite`` file, on TensorFlow Lite Micro (``device_bench/tflm.py``):

- ``ops``, and the ops TFLM lacks (``missing_ops``, named by TFLM's op resolver): a
  refused model reports ``refused`` with the op's name, never a crash;
- ``arena_bytes``: the smallest tensor arena in which the model allocates *and runs*,
  found by search. TFLM's own answer is "determine it by experimentation": its recording
  allocator's total (``arena_estimate_bytes``, beside it) leaves out temporary
  allocations made while preparing kernels (tflite-micro#890), and a model allocated in
  exactly that many bytes fails. The search starts at the estimate (a lower bound: every
  byte counted there is used), grows until a run succeeds, then bisects between the
  largest failing and the smallest working size, each probe a real allocate + invoke;
- ``flash_bytes``: the ``.tflite`` flatbuffer (weights, tensor and op tables, metadata),
  which the firmware holds as a const array; TFLM's library code and kernels come on
  top and depend on the firmware's build;
- the outputs on one sample, and host-side invoke timing, labelled as such: TFLM's
  reference kernels on this host are not an MCU timing.

``micro_isolated`` runs all of it in a child process, so a native crash of TFLM is a
``crashed`` report, as for any runtime.
"""

from __future__ import annotations

import faulthandler
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_bench.child import run_child, signal_name, telling_line
from device_bench.errors import DeviceBenchError, ModelRefusedError
from device_bench.inputs import load_input_file
from device_bench.model_file import check_model_file
from device_bench.runner import model_io, run_model
from device_bench.tensors import DEFAULT_SEED, random_input
from device_bench.tflm import (
    ARENA_RESOLUTION,
    MAX_ARENA_BYTES,
    RUN_ARENA_BYTES,
    TFLM,
    TflmError,
    TflmInterpreter,
    arena_estimate,
    model_ops,
    tflm_version,
)

DEFAULT_TIMING_RUNS = 20
FLASH_INCLUDES = (
    "the .tflite flatbuffer (weights, tensor and op tables, metadata) as a const array; "
    "TFLM's library and kernel code come on top"
)


@dataclass(frozen=True)
class ArenaFit:
    """The arena a model needs.

    Attributes:
        arena_bytes: The smallest multiple of ``ARENA_RESOLUTION`` that allocated and ran.
        estimate_bytes: The recording allocator's total at a generous arena.
        probes: How many arena sizes were tried.
        crashed_at: Arena sizes at which TFLM crashed instead of failing cleanly.
    """

    arena_bytes: int
    estimate_bytes: int | None
    probes: int
    crashed_at: tuple[int, ...] = ()


def _fits(path: str, arena: int, sample: np.ndarray) -> bool:
    interpreter = TflmInterpreter(path, arena_size=arena)
    try:
        interpreter.allocate_tensors()
        interpreter.set_tensor(0, sample)
        interpreter.invoke()
    except TflmError:
        return False
    return True


def _probe(path: str, arena: int, sample: np.ndarray) -> str:
    """Whether the model allocates and runs in ``arena`` bytes: ok, failed or crashed.

    Measured: TFLM (tflite-micro 0.dev20261023) segfaults at some arena sizes just
    short of enough (a 16-input dense int8 model at 1792 bytes), so each probe runs
    in a forked child where the platform has ``fork``.
    """
    if not hasattr(os, "fork"):
        return "ok" if _fits(path, arena, sample) else "failed"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: answer by exit code only
        faulthandler.disable()  # a crash here is an answer, not a traceback to print
        code = 3
        try:
            code = 0 if _fits(path, arena, sample) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) not in (0, 1):
        return "crashed"
    return "ok" if os.WEXITSTATUS(status) == 0 else "failed"


def find_arena(path: str, sample: np.ndarray) -> ArenaFit:
    """Searches the smallest arena in which the model allocates and runs on ``sample``.

    Args:
        path: The ``.tflite`` file (TFLM must accept its ops).
        sample: One input in the input tensor's dtype and shape.

    Returns:
        The smallest working arena, the allocator's estimate and the probe count.

    Raises:
        TflmError: the model does not run even in ``MAX_ARENA_BYTES``.
    """
    generous = TflmInterpreter(path, arena_size=RUN_ARENA_BYTES)
    generous.allocate_tensors()
    generous.set_tensor(0, sample)
    generous.invoke()
    estimate = arena_estimate(generous.print_allocations())
    # Sizes are searched in steps of ARENA_RESOLUTION, from the estimate up (every byte it
    # counts is used, so below it nothing should fit: checked once when it fits at once).
    step = ARENA_RESOLUTION
    failing = -(-(estimate or step) // step) - 1  # in steps; the first probe >= estimate
    working = failing + 1
    probes: list[tuple[int, str]] = []

    def fits(steps: int) -> bool:
        probes.append((steps * step, _probe(path, steps * step, sample)))
        return probes[-1][1] == "ok"

    while True:
        if fits(working):
            break
        failing, working = working, working * 2
        if working * step > MAX_ARENA_BYTES:
            raise TflmError(f"the model does not run in a {MAX_ARENA_BYTES}-byte arena")
    if len(probes) == 1 and failing > 0 and fits(failing):
        failing, working = 0, failing  # the estimate was not a lower bound: search below
    while working - failing > 1:
        middle = (failing + working) // 2
        if fits(middle):
            working = middle
        else:
            failing = middle
    return ArenaFit(
        arena_bytes=working * step,
        estimate_bytes=estimate,
        probes=len(probes),
        crashed_at=tuple(size for size, outcome in probes if outcome == "crashed"),
    )


@dataclass(frozen=True)
class MicroReport:
    """One model on TFLM: ops, arena, flash, outputs, host timing (``to_json``)."""

    path: str
    status: str  # ok | refused | crashed
    reason: str | None
    runtime_version: str | None = None
    flash_bytes: int | None = None
    arena_bytes: int | None = None
    arena_estimate_bytes: int | None = None
    arena_probes: int | None = None
    arena_crashed_at: tuple[int, ...] = ()
    ops: tuple[str, ...] = ()
    missing_ops: tuple[str, ...] = ()
    float_ops: tuple[str, ...] = ()
    input: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    outputs: list[Any] | None = None
    host_timing: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        doc = dict(vars(self))
        doc.update(runtime=TFLM, flash_includes=FLASH_INCLUDES)
        for key in ("ops", "missing_ops", "float_ops", "arena_crashed_at"):
            doc[key] = list(doc[key])
        return doc


def _tensor_json(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    quantized = bool(scale)
    return {
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale) if quantized else None,
        "zero_point": int(zero_point) if quantized else None,
    }


def _host_timing(path: str, arena: int, sample: np.ndarray, runs: int) -> dict[str, Any]:
    interpreter = TflmInterpreter(path, arena_size=arena)
    interpreter.allocate_tensors()
    interpreter.set_tensor(0, sample)
    durations = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        durations.append(time.perf_counter_ns() - start)
    machine = platform.machine() or "unknown"
    return {
        "label": f"{machine} host timing of TFLM's kernels; not an MCU timing",
        "machine": machine,
        "runs": runs,
        "median_ms": float(np.median(durations)) / 1e6,
        "mean_ms": float(np.mean(durations)) / 1e6,
    }


def micro_report(
    path: str, inputs: np.ndarray | None = None, *, runs: int = DEFAULT_TIMING_RUNS
) -> MicroReport:
    """Runs ``path`` on TFLM in this process (``micro_isolated`` for a child).

    Args:
        path: The ``.tflite`` file.
        inputs: Real-valued samples ``(N, ...)``; ``None`` for one seeded random sample.
        runs: Timed invokes on this host.

    Returns:
        The report; a model TFLM refuses is ``refused`` with the reason (missing ops named).

    Raises:
        DeviceBenchError: bad input (file, array) or TFLM not installed.
    """
    model_path = str(check_model_file(path))
    flash = Path(model_path).stat().st_size
    ops = model_ops(Path(model_path).read_bytes())
    base: dict[str, Any] = {
        "runtime_version": tflm_version(),
        "flash_bytes": flash,
        "ops": ops.ops + ops.custom_ops,
        "float_ops": ops.float_ops,
    }
    try:
        result = run_model(model_path, inputs, runtime=TFLM)
    except DeviceBenchError as error:
        if not isinstance(error, ModelRefusedError):
            raise
        cause = error.__cause__
        missing = cause.missing_ops if isinstance(cause, TflmError) else ()
        return MicroReport(model_path, "refused", str(error), missing_ops=missing, **base)
    probe = TflmInterpreter(model_path)
    probe.allocate_tensors()
    io = model_io(probe, model_path)
    sample = random_input(io.input_shape, io.input_quantization.dtype, seed=DEFAULT_SEED)
    fit = find_arena(model_path, sample)
    return MicroReport(
        model_path,
        "ok",
        None,
        arena_bytes=fit.arena_bytes,
        arena_estimate_bytes=fit.estimate_bytes,
        arena_probes=fit.probes,
        arena_crashed_at=fit.crashed_at,
        input=_tensor_json(probe.get_input_details()[0]),
        output=_tensor_json(probe.get_output_details()[0]),
        outputs=np.asarray(result.outputs).tolist(),
        host_timing=_host_timing(model_path, fit.arena_bytes, sample, runs),
        **base,
    )


def micro_isolated(
    path: str,
    *,
    input_path: str | None = None,
    python: str | None = None,
    runs: int = DEFAULT_TIMING_RUNS,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """``micro_report`` in a child process: a native crash is a ``crashed`` report.

    Args:
        path: The ``.tflite`` file.
        input_path: ``.npy``/``.npz`` samples, or ``None`` for a random sample.
        python: The child's Python (another venv), ``None`` for this one.
        runs: Timed invokes.
        timeout_s: Time limit of the child.

    Returns:
        The report's JSON; ``status`` crashed (with ``reason``) when the child died.

    Raises:
        DeviceBenchError: the child rejected its input (a bad file, TFLM not installed).
    """
    with tempfile.TemporaryDirectory(prefix="device_bench_micro_") as tmp:
        report_file = Path(tmp) / "micro.json"
        command = [python or sys.executable, "-m", "device_bench", "micro", str(path)]
        command += ["--json", str(report_file), "--runs", str(runs)]
        if input_path is not None:
            command += ["--input", input_path]
        try:
            completed = run_child(command, timeout_s)
        except subprocess.TimeoutExpired:
            return _crashed(path, f"did not finish within {timeout_s:g} s; killed")
        stderr = completed.stderr.decode(errors="replace").strip().splitlines()
        if completed.returncode == 2:
            raise DeviceBenchError(telling_line(stderr) if stderr else "bad input")
        if not report_file.exists():
            name = signal_name(completed.returncode)
            how = f"was killed by {name}" if name else f"exited with {completed.returncode}"
            last = f"; stderr: {telling_line(stderr)}" if stderr else ""
            return _crashed(path, f"TFLM's process {how}{last}")
        document: dict[str, Any] = json.loads(report_file.read_text())
        return document


def _crashed(path: str, reason: str) -> dict[str, Any]:
    return MicroReport(str(path), "crashed", reason).to_json()


def load_samples(input_path: str | None) -> np.ndarray | None:
    """The samples of an ``--input`` file, or ``None`` for a random sample."""
    return None if input_path is None else load_input_file(input_path)
