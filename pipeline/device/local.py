"""What the report keeps of device_bench's JSON report: the `bench.<variant>` block.

device_bench measures (through `pipeline.device.client.bench`, here or under another
Python, or on a device over SSH); `summarize` picks from one model's entry what
report.json records.
"""

from __future__ import annotations

from typing import Any

LATENCY_KEYS = ("p50", "p90", "p99", "mean", "min", "max")


def summarize(entry: dict[str, Any]) -> dict[str, Any]:
    """The report's `bench.<variant>` block from one device_bench model entry."""
    if entry.get("status") != "ok":
        return {
            "status": entry.get("status"),
            "reason": entry.get("reason"),
            "runtime": entry.get("runtime"),
            "threads": entry.get("threads"),
        }
    latency = entry["latency_ms"]
    return {
        "status": "ok",
        "runtime": entry["runtime"],
        "runtime_version": entry.get("runtime_version"),
        "threads": entry["threads"],
        "xnnpack": entry.get("xnnpack"),
        "note": entry.get("note"),
        "runs": entry.get("runs"),
        "latency_ms": {k: latency[k] for k in (*LATENCY_KEYS, "std", "p95") if k in latency},
        "init_ms": entry.get("init_ms"),
        "first_invoke_ms": entry.get("first_invoke_ms"),
        "peak_rss_mb": entry["memory"]["peak_rss_mb"],
        "model_mb": entry["memory"].get("model_mb"),
        "arena_bytes": entry["memory"].get("arena_bytes"),
        "ratio_to_float32": entry.get("ratio_to_first"),
    } | ({"profile": entry["profile"]} if entry.get("profile") else {})
