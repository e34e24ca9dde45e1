"""The bench stage: latency and memory of every variant, measured by device_bench.

device_bench runs in a subprocess (optionally under another Python, e.g. a venv holding a
device's legacy runtime), exactly as it would on the device: each model in a fresh process,
models interleaved round by round so machine drift hits all alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.config import BenchConfig
from pipeline.errors import ConfigError

LATENCY_KEYS = ("p50", "p90", "p99", "mean", "min", "max")


def device_bench_env() -> dict[str, str]:
    """Environment in which any Python can import this checkout's device_bench."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_device_bench(
    models: list[Path], config: BenchConfig, python: str | None = None
) -> dict[str, Any]:
    """Runs `python -m device_bench` on `models` and returns its JSON report.

    Raises:
        ConfigError: the given Python cannot run device_bench at all.
    """
    with tempfile.TemporaryDirectory(prefix="bedside-bench-") as tmp:
        report_path = Path(tmp) / "bench.json"
        cmd = [
            python or sys.executable,
            "-m",
            "device_bench",
            *map(str, models),
            "--runs",
            str(config.runs),
            "--warmup",
            str(config.warmup),
            "--min-seconds",
            str(config.min_seconds),
            "--threads",
            str(config.threads),
            "--json",
            str(report_path),
        ]
        proc = subprocess.run(
            cmd,
            env=device_bench_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if not report_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ConfigError(
                f"device_bench did not run under '{cmd[0]}' (exit {proc.returncode}): "
                f"{' | '.join(tail)}. Check --runtime-python points at a Python with numpy and "
                "a LiteRT runtime."
            )
        return json.loads(report_path.read_text())


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
    }
