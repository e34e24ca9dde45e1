"""Measuring int8 files for the latency model of structured pruning
(`pipeline.prune.structured.latency`), through the one client of device_bench.

`files_ms` runs all files in one interleaved device_bench run. A file's time is its per-op
profile's sum (each op's p50 less an empty invoke's), which is what the op adds to a larger
model; `whole=True` takes the whole file's p50 instead (a full model, invoke included).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.config import BenchConfig
from pipeline.device.client import bench
from pipeline.errors import ModelError

# Short runs: the latency model measures many small files; the cache keeps them.
LAYER_BENCH = BenchConfig(runs=30, warmup=3, min_seconds=0.05, threads=1)
MODEL_BENCH = BenchConfig(runs=100, warmup=10, min_seconds=0.5, threads=1)


def runtime_name(threads: int = 1) -> str:
    """The runtime the latency model measures on this machine (its cache's name)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        litert = f"litert{version('ai-edge-litert')}"
    except PackageNotFoundError:
        litert = "tflite"
    return f"local-{platform.machine()}-{litert}-threads{threads}"


def files_ms(files: Sequence[Path], whole: bool = False, threads: int = 1) -> list[float]:
    """Measured time of every int8 file in ms (see the module docstring).

    Raises:
        ModelError: a file could not be measured.
    """
    from dataclasses import replace

    config = replace(MODEL_BENCH if whole else LAYER_BENCH, threads=threads, profile=not whole)
    report = bench(list(files), config)
    out = []
    for entry in report["models"]:
        profile, latency = entry.get("profile"), entry.get("latency_ms")
        if not whole and profile and profile.get("sum_ms") is not None:
            out.append(float(profile["sum_ms"]))
        elif latency and latency.get("p50") is not None:
            out.append(float(latency["p50"]))
        else:
            raise ModelError(
                f"device_bench could not measure '{entry['path']}' for the latency model: "
                f"{entry.get('reason')}. Leave out --speedup-target, or fix the runtime."
            )
    return out
