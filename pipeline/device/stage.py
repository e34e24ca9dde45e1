"""The bench stage: latency and memory of every variant, here, under --runtime-python and on
every --device."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from pipeline.clock import StageClock
from pipeline.config import BuildConfig, Variant


def bench_stage(
    paths: dict[Variant, Path], config: BuildConfig, clock: StageClock
) -> dict[str, Any]:
    """Latency and memory of every variant through device_bench (empty when disabled)."""
    from pipeline.device import client
    from pipeline.device.local import summarize

    bench: dict[str, Any] = {}
    if not config.bench.enabled:
        return bench
    raw_bench = clock.run("bench", lambda: client.bench(list(paths.values()), config.bench))
    for variant, entry in zip(paths, raw_bench["models"], strict=True):
        bench[variant.value] = summarize(entry)
    if config.quantize.runtime_python is not None:
        # the same files on the device's runtime: ratios can differ completely
        other = clock.run(
            "bench runtime-python",
            lambda: client.bench(
                list(paths.values()), config.bench, str(config.quantize.runtime_python)
            ),
        )
        for variant, entry in zip(paths, other["models"], strict=True):
            bench[variant.value]["runtime_python"] = summarize(entry)
    for device in config.device.devices:
        # the same files on the bedside device itself, over SSH
        for variant, summary in clock.run(
            f"bench {device.name}", partial(_bench_device, device, paths, config)
        ).items():
            bench[variant.value].setdefault("devices", {})[device.name] = summary
    return bench


def _bench_device(device: Any, paths: dict[Variant, Path], config: BuildConfig) -> dict:
    """`bench.<variant>.devices.<name>` of one device; its status when it fails."""
    from pipeline.device.local import summarize
    from pipeline.device.remote import bench_on_device
    from pipeline.errors import DeviceError

    try:
        doc = bench_on_device(device, list(paths.values()), config.bench)
    except DeviceError as error:
        failed = {"status": error.status, "reason": str(error), "device": device.to_json()}
        return {variant: dict(failed) for variant in paths}
    emulated = {"emulated": True} if device.emulated else {}
    return {
        variant: {**summarize(entry), **emulated, "device": doc["device"]}
        for variant, entry in zip(paths, doc["models"], strict=True)
    }
