"""Runs ``python -m device_bench run`` in a child, possibly under another Python.

This is how outputs are compared across runtimes: the child can be a venv with
another runtime (e.g. the legacy tflite-runtime with numpy<2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from device_bench import errors
from device_bench.child import run_child, signal_name, telling_line
from device_bench.errors import ModelCrashedError
from device_bench.runner import RunResult
from device_bench.tensors import Quantization


def _error_class(name: str) -> type[errors.DeviceBenchError]:
    candidate = getattr(errors, name, None)
    if isinstance(candidate, type) and issubclass(candidate, errors.DeviceBenchError):
        return candidate
    return errors.ModelRefusedError


def run_isolated(
    path: str | os.PathLike[str],
    inputs: np.ndarray,
    *,
    python: str | None = None,
    runtime: str | None = None,
    threads: int = 1,
    xnnpack: bool = True,
    delegate_fallback: bool = True,
    batch_size: int | None = None,
    timeout_s: float = 300.0,
    api: str = "interpreter",
) -> RunResult:
    """Runs ``run_model`` in a child process, possibly under another Python.

    This is how outputs are compared across runtimes: e.g. ``python=
    "/opt/legacy/bin/python"`` runs the model on that venv's tflite_runtime.

    Args:
        path: Path of a ``.tflite`` model.
        inputs: Real values shaped ``(N, *input_shape[1:])``.
        python: Interpreter for the child; ``None`` for this one.
        runtime: Runtime name for the child, or ``None`` for its first one.
        threads: Interpreter threads.
        xnnpack: Whether to use default delegates.
        delegate_fallback: Whether to retry without default delegates when they
            refuse the model (``False``: the refusal is the result).
        batch_size: Samples per invoke, or ``None`` for the default.
        timeout_s: Time limit for the child.
        api: ``interpreter`` or ``compiled`` (LiteRT's CompiledModel on CPU).

    Returns:
        The child's result.

    Raises:
        DeviceBenchError: The same error class the child raised.
        ModelCrashedError: The child died or timed out.
    """
    with tempfile.TemporaryDirectory(prefix="device_bench_run_") as tmp:
        input_file = Path(tmp) / "inputs.npy"
        output_file = Path(tmp) / "outputs.npz"
        status_file = Path(tmp) / "status.json"
        np.save(input_file, np.asarray(inputs))
        command = [python or sys.executable, "-m", "device_bench", "run", str(path)]
        command += ["--input", str(input_file), "--output", str(output_file)]
        command += ["--status", str(status_file), "--threads", str(threads)]
        if runtime:
            command += ["--runtime", runtime]
        if not xnnpack:
            command.append("--no-xnnpack")
        if api != "interpreter":
            command += ["--api", api]
        if not delegate_fallback:
            command.append("--no-fallback")
        if batch_size is not None:
            command += ["--batch-size", str(batch_size)]
        try:
            completed = run_child(command, timeout_s)
        except subprocess.TimeoutExpired as error:
            raise ModelCrashedError(
                f"'{path}' did not finish within {timeout_s:g} s under {command[0]}; killed."
            ) from error
        stderr = completed.stderr.decode(errors="replace").strip().splitlines()
        if not status_file.exists():
            name = signal_name(completed.returncode)
            how = f"was killed by {name}" if name else f"exited with {completed.returncode}"
            last = f"; stderr: {telling_line(stderr)}" if stderr else ""
            raise ModelCrashedError(f"running '{path}' under {command[0]} {how}{last}")
        status = json.loads(status_file.read_text())
        if status["status"] != "ok":
            raise _error_class(status.get("error_type", ""))(status["reason"])
        with np.load(output_file, allow_pickle=False) as arrays:
            outputs, raw = arrays["outputs"], arrays["raw_outputs"]
        return RunResult(
            outputs=outputs,
            raw_outputs=raw,
            input_quantization=Quantization(**status["input"]),
            output_quantization=Quantization(**status["output"]),
            runtime=status["runtime"],
            runtime_version=status["runtime_version"],
            xnnpack=status["xnnpack"],
            batched=status["batched"],
            note=status["note"],
        )
