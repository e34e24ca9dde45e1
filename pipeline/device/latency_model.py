"""Measuring int8 files for the latency model of structured pruning
(`pipeline.prune.structured.latency`), through the one client of device_bench, on this
machine or on an SSH device (`--latency-target`).

`files_ms` runs all files in one interleaved device_bench run (on a device: all of them
shipped in one SSH session). A file's time is its per-op profile's sum (each op's p50 less
an empty invoke's), which is what the op adds to a larger model; `whole=True` takes the
whole file's p50 instead (a full model, invoke included), the median of `WHOLE_RUNS`
interleaved runs: each run measures a file in a process of its own, and a process can stay
slow all run long (a 0.113 ms file once read 0.153 ms in one run, 0.113 in six more), which
would move a cut out of the speed search's shortlist.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.config import BenchConfig
from pipeline.config.inventory import Device
from pipeline.device.client import bench
from pipeline.errors import ModelError

# Short runs: the latency model measures many small files; the cache keeps them.
LAYER_BENCH = BenchConfig(runs=30, warmup=3, min_seconds=0.05, threads=1)
MODEL_BENCH = BenchConfig(runs=100, warmup=10, min_seconds=0.5, threads=1)
WHOLE_RUNS = 3  # whole files: the median of this many interleaved runs


def runtime_name(threads: int = 1, device: Device | None = None) -> str:
    """The runtime the latency model measures on (its cache's name): this machine's, or the
    device's as it reports itself (`ssh:HOST[:PORT]:MACHINE:RUNTIME VERSION:tTHREADS`), so
    times of two devices never mix.

    Raises:
        DeviceError: `device` cannot be reached or cannot run the agent.
    """
    if device is not None:
        from pipeline.device.remote import describe_device

        info = describe_device(device)
        host = f"{device.host}:{device.port}" if device.port else device.host
        runtime = f"{info.get('runtime')}{info.get('runtime_version') or ''}"
        return f"ssh:{host}:{info.get('machine')}:{runtime}:t{threads}"
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        litert = f"litert{version('ai-edge-litert')}"
    except PackageNotFoundError:
        litert = "tflite"
    return f"local-{platform.machine()}-{litert}-threads{threads}"


def files_ms(
    files: Sequence[Path], whole: bool = False, threads: int = 1, device: Device | None = None
) -> list[float]:
    """Measured time of every int8 file in ms (see the module docstring), here or on
    `device`.

    Raises:
        ModelError: a file could not be measured.
        DeviceError: `device` cannot be reached or cannot run the agent.
    """
    from dataclasses import replace

    config = replace(MODEL_BENCH if whole else LAYER_BENCH, threads=threads, profile=not whole)
    runs = [_run_ms(files, config, device) for _ in range(WHOLE_RUNS if whole else 1)]
    return [float(np.median(times)) for times in zip(*runs, strict=True)]


def _run_ms(files: Sequence[Path], config: BenchConfig, device: Device | None) -> list[float]:
    """Every file's time in one interleaved device_bench run: its profile's sum when
    `config` profiles (layer files), else its whole p50."""
    if device is None:
        report = bench(list(files), config)
    else:
        from pipeline.device.remote import bench_on_device

        report = bench_on_device(device, list(files), config)
    where = "" if device is None else f" on device {device.label}"
    out = []
    for entry in report["models"]:
        profile, latency = entry.get("profile"), entry.get("latency_ms")
        if config.profile and profile and profile.get("sum_ms") is not None:
            out.append(float(profile["sum_ms"]))
        elif latency and latency.get("p50") is not None:
            out.append(float(latency["p50"]))
        else:
            raise ModelError(
                f"device_bench could not measure '{entry['path']}'{where} for the latency "
                f"model: {entry.get('reason')}. Leave out --speedup-target, pass "
                "--latency-target local, or fix the runtime."
            )
    return out
