"""device_bench's two jobs, done on a bedside device: bench models, and run a model on
inputs (for verification). Each call is one `Session`: nothing stays on the device."""

from __future__ import annotations

import functools
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import BenchConfig
from pipeline.config.inventory import Device
from pipeline.device.ssh import Session, json_object
from pipeline.errors import DeviceError

# device_bench bounds each model by its own --timeout; this only bounds a silent device.
PER_MODEL_TIMEOUT_S = 300.0


def _remote_names(models: list[Path]) -> dict[str, Path]:
    return {f"m{i}_{Path(m).name}": Path(m) for i, m in enumerate(models)}


def bench_on_device(device: Device, models: list[Path], config: BenchConfig) -> dict[str, Any]:
    """device_bench's JSON report of `models` measured on `device`, with a `device` object.

    Raises:
        DeviceError: the device cannot be reached or cannot run the agent.
    """
    files = _remote_names(models)
    threads = device.threads or config.threads
    args = ["bench", *files, "--runs", str(config.runs), "--warmup", str(config.warmup)]
    args += ["--min-seconds", str(config.min_seconds), "--threads", str(threads)]
    args += ["--timeout", str(PER_MODEL_TIMEOUT_S), "--json", "-"]
    if config.profile:
        args.append("--profile")
    with Session(device, files) as session:
        timeout = PER_MODEL_TIMEOUT_S * (len(models) + 1)
        proc = session.run(args, timeout, "benchmarking")
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            tail = " | ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-2:])
            raise DeviceError(
                f"device {device.label}: device_bench failed (exit {proc.returncode}: {tail}).",
                "refused",
            ) from None
        doc["device"] = session.describe()
    if device.emulated:
        # an emulator's clock measures the emulator: keep the numbers, say what they are
        doc["emulated"] = True
        for entry in doc["models"]:
            entry["emulated"] = True
    for entry, (name, path) in zip(doc["models"], files.items(), strict=True):
        entry["path"], entry["device_path"] = str(path), name
    return doc


@functools.lru_cache(maxsize=8)
def describe_device(device: Device) -> dict[str, Any]:
    """The report's `device` object of `device` (what it is and runs), asked over SSH once
    per process: reaching it proves it can run the agent.

    Raises:
        DeviceError: the device cannot be reached or cannot run the agent.
    """
    with Session(device, {}) as session:
        return session.describe()


def run_on_device(
    device: Device, model: Path, x: np.ndarray
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Runs `model` on `x` on `device` with its default runtime (as `run_on_runtime` does
    locally): (dequantized outputs or None, status dict with `status` and `reason`).

    Never raises for the device: an unreachable or unfit device is a status.
    """
    try:
        with tempfile.TemporaryDirectory(prefix="bedside-verify-") as tmp:
            inputs = Path(tmp, "x.npy")
            np.save(inputs, x.astype(np.float32))
            files = {"model.tflite": Path(model), "x.npy": inputs}
            with Session(device, files) as session:
                args = ["run", "model.tflite", "--input", "x.npy", "--output", "y.npz"]
                args += ["--status", "s.json", "--overwrite", "--no-fallback"]
                proc = session.run(args, PER_MODEL_TIMEOUT_S, "verifying")
                described = session.describe()
                info: dict[str, Any] = json_object(proc.stdout) or {}
                info["device"] = described
                if proc.returncode != 0 or info.get("status") != "ok":
                    tail = " | ".join(proc.stderr.decode(errors="replace").splitlines()[-2:])
                    reason = info.get("reason") or f"exit {proc.returncode}: {tail}"
                    state = "crashed" if proc.returncode not in (0, 1, 2) else "refused"
                    return None, {**info, "status": state, "reason": reason}
                data = session.fetch("y.npz", "fetching the outputs")
    except DeviceError as error:
        return None, {"status": error.status, "reason": str(error), "device": device.to_json()}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["outputs"].astype(np.float32), {**info, "status": "ok", "reason": None}
