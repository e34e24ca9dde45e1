"""The pipeline's one door to device_bench: every stage that runs a .tflite file comes here.

device_bench (numpy and a LiteRT runtime, nothing of the pipeline) is what runs on a
bedside device; here the pipeline calls its public functions on this machine:

- `run_model`: a model's outputs in this process (operating point, metrics, PTQ remedies,
  manifest check, ONNX reference).
- `run_in_child`: the same in a child process (device_bench's `run_isolated`), possibly
  under another Python holding another runtime, so a native crash cannot take the build
  down (runtime verification).
- `bench`: latency and memory (device_bench's `bench_models`): each model in its own
  child process, models interleaved round by round so machine drift hits all alike.

Only this module and `pipeline/device/agent.py` (which packs device_bench as a zipapp for
SSH devices) import device_bench; tests/pipeline/test_walls.py holds the line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from device_bench import (
    BenchSettings,
    DeviceBenchError,
    ModelCrashedError,
    Quantization,
    RunResult,
    add_profiles,
    bench_models,
    dequantize,
    micro_isolated,
    run_isolated,
    run_model,
)
from device_bench.child import child_environment
from device_bench.compare import (
    DIVERGENCE_STEPS,
    RunSpec,
    compare_ops,
    compare_to_model,
    first_divergence,
)
from device_bench.compiled import compiled_available
from device_bench.model_file import check_model_path
from device_bench.profile import ModelProfile
from device_bench.table import profile_lines as _profile_lines
from pipeline.config import BenchConfig
from pipeline.errors import ConfigError, ModelError

__all__ = [
    "Quantization",
    "RunResult",
    "bench",
    "compare_runtimes",
    "compare_to_float",
    "compiled_available",
    "dequantize",
    "micro_available",
    "micro_footprint",
    "profile_lines",
    "run_in_child",
    "run_model",
]

# What the report keeps of device_bench's TFLM report (not the outputs or host timing).
MICRO_KEYS = (
    "status",
    "reason",
    "runtime_version",
    "arena_bytes",
    "arena_estimate_bytes",
    "arena_crashed_at",
    "flash_bytes",
    "flash_includes",
    "ops",
    "missing_ops",
    "float_ops",
)

# How long a runtime may take to run the test split before it counts as crashed.
RUN_TIMEOUT_S = 600.0


def run_in_child(
    model: Path,
    x: np.ndarray,
    *,
    python: str | None = None,
    runtime: str | None = None,
    xnnpack: bool = True,
    delegate_fallback: bool = True,
    api: str = "interpreter",
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Runs `model` on `x` in a child process (device_bench's `run_isolated`).

    Args:
        model: the .tflite file.
        x: real-valued inputs, float32.
        python: the child's Python (e.g. a venv with tflite-runtime); None for this one.
        runtime: the runtime to load there (`ai_edge_litert`, `tflite_runtime`, ...).
        xnnpack: whether to use the runtime's default delegates.
        delegate_fallback: whether to retry without them when they refuse the model.
        api: `interpreter`, or `compiled` for ai-edge-litert's CompiledModel (CPU).

    Returns:
        (dequantized float32 outputs, or None when the model did not run; a status dict
        with `status` (ok, refused or crashed) and `reason`, and for a run the runtime,
        its version, delegates, note and the input/output quantization).
    """
    try:
        result = run_isolated(
            model,
            np.asarray(x, np.float32),
            python=python,
            runtime=runtime,
            xnnpack=xnnpack,
            delegate_fallback=delegate_fallback,
            timeout_s=RUN_TIMEOUT_S,
            api=api,
        )
    except ModelCrashedError as error:
        return None, {"status": "crashed", "reason": str(error)}
    except DeviceBenchError as error:
        return None, {"status": "refused", "reason": str(error)}
    return result.outputs.astype(np.float32), {
        "status": "ok",
        "reason": None,
        "runtime": result.runtime,
        "runtime_version": result.runtime_version,
        "xnnpack": result.xnnpack,
        "note": result.note,
        "batched": result.batched,
        "samples": int(result.outputs.shape[0]),
        "input": result.input_quantization.to_json(),
        "output": result.output_quantization.to_json(),
        "output_shape": list(result.raw_outputs.shape),
    }


def micro_available() -> bool:
    """Whether TensorFlow Lite Micro (the `[micro]` extra, `tflite-micro`) is installed."""
    return importlib.util.find_spec("tflite_micro") is not None


def micro_footprint(model: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """TFLM's account of `model` (device_bench's `micro_isolated`, in a child process): the
    smallest arena that allocates and runs, the allocator's estimate, flash bytes, ops, the
    ops TFLM lacks and the float ops left in.

    Args:
        model: the .tflite file.
        extra: more keys of device_bench's report to keep (`input`, `output`).

    Returns:
        The `MICRO_KEYS` (and `extra`) of device_bench's report; `status` ok, refused or
        crashed.
    """
    try:
        # one timed invoke: host timing is not kept (it is not an MCU's)
        report = micro_isolated(str(model), runs=1, timeout_s=RUN_TIMEOUT_S)
    except DeviceBenchError as error:
        report = {"status": "refused", "reason": str(error)}
    return {key: report.get(key) for key in (*MICRO_KEYS, *extra)}


def _host_of(python: str) -> dict[str, Any]:
    """The `host` block of a report measured under `python`: its version, machine, CPUs.

    Asks that Python itself (`python -m device_bench info`), which also proves it can run
    device_bench at all.

    Raises:
        ConfigError: `python` cannot run device_bench (missing, no numpy, ...).
    """
    try:
        proc = subprocess.run(
            [python, "-m", "device_bench", "info"],
            env=child_environment(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except OSError as error:
        how, tail = "not started", [str(error)]
    else:
        if proc.returncode == 0:
            info = json.loads(proc.stdout)
            return {k: info[k] for k in ("python", "machine", "cpu_count", "system")}
        how = f"exit {proc.returncode}"
        tail = (proc.stderr or proc.stdout).strip().splitlines()
    raise ConfigError(
        f"device_bench did not run under '{python}' ({how}): "
        f"{' | '.join(tail[-3:])}. Check --runtime-python points at a Python with numpy and "
        "a LiteRT runtime."
    )


def bench(models: Sequence[Path], config: BenchConfig, python: str | None = None) -> dict[str, Any]:
    """device_bench's JSON report of `models`: latency and memory, each in its own child
    process, interleaved (with ratios to the first) when there are several.

    Args:
        models: .tflite files; the first is the reference of the ratios.
        config: runs, warm-up, minimum time, threads, and whether to profile each op.
        python: the Python that runs the measuring children (e.g. a venv with
            tflite-runtime); None for this one.

    Raises:
        ConfigError: `python` cannot run device_bench at all.
        ModelError: a path is not a .tflite file.
    """
    host = _host_of(python) if python is not None else None
    for model in models:
        try:
            check_model_path(model)
        except DeviceBenchError as error:
            raise ModelError(str(error)) from None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # a child may fall back to TF Lite
    settings = BenchSettings(
        runs=config.runs,
        warmup=config.warmup,
        min_seconds=config.min_seconds,
        threads=config.threads,
        python=python,
    )
    report = bench_models([str(m) for m in models], settings)
    if config.profile:
        report = add_profiles(report)
    if host is not None:
        report = replace(report, host=host)
    return report.to_json()


def profile_lines(name: str, profile: dict[str, Any]) -> list[str]:
    """device_bench's lines for a `models[i].profile` block: the sum against the whole
    model, the QUANTIZE/DEQUANTIZE and float shares, then the top ops by share."""
    return _profile_lines(name, ModelProfile.from_json(profile))


# verification targets that run in this process, as device_bench runs them
_RUN_SPECS = {
    "litert": RunSpec("litert", xnnpack=True, runtime="ai_edge_litert"),
    "litert-no-delegates": RunSpec("litert-no-delegates", xnnpack=False, runtime="ai_edge_litert"),
}


def compare_runtimes(
    model: Path, x: np.ndarray, a: str, b: str, bound: float = DIVERGENCE_STEPS
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Every op's output of `model` on runtime `b` against runtime `a`, in execution order.

    Args:
        model: the .tflite file.
        x: real-valued inputs (N, ...), float32.
        a: the reference side, a target name (`litert`, `litert-no-delegates`).
        b: the side compared with it.
        bound: quantization steps beyond which an op's output differs.

    Returns:
        (per-op errors: index, op, dtype, max_steps, local_max_steps, max_abs, snr_db,
        differing; the first op differing by more than `bound` steps, or None).

    Raises:
        ConfigError: a target cannot run in this process.
        ModelError: the model cannot be compared (control flow, refused by a runtime).
    """
    for name in (a, b):
        if name not in _RUN_SPECS:
            raise ConfigError(
                f"--compare {name!r}: expected one of {', '.join(_RUN_SPECS)} (runtimes "
                "that run in this process); compare another runtime on its own device."
            )
    try:
        errors = compare_ops(model, np.asarray(x, np.float32), _RUN_SPECS[a], _RUN_SPECS[b])
    except DeviceBenchError as error:
        raise ModelError(str(error)) from None
    first = first_divergence(errors, bound)
    return [e.to_json() for e in errors], None if first is None else first.to_json()


def compare_to_float(
    model: Path, reference: Path, x: np.ndarray, target: str, bound: float = DIVERGENCE_STEPS
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Every op's output of `model` (int8) against the same-named op of `reference` (the
    float32 file it was made from) on one runtime, in `model`'s quantization steps.

    Returns:
        (per-op errors, the first op differing by more than `bound` steps or None).

    Raises:
        ConfigError: `target` cannot run in this process.
        ModelError: a model cannot be compared.
    """
    if target not in _RUN_SPECS:
        raise ConfigError(f"{target!r}: expected one of {', '.join(_RUN_SPECS)}.")
    try:
        errors = compare_to_model(model, reference, np.asarray(x, np.float32), _RUN_SPECS[target])
    except DeviceBenchError as error:
        raise ModelError(str(error)) from None
    first = first_divergence(errors, bound)
    return [e.to_json() for e in errors], None if first is None else first.to_json()
