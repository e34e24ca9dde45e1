"""Settings of a benchmark run, validated once where they are made."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from device_bench.runtime import RUNTIME_NAMES

DEFAULT_RUNS = 50
DEFAULT_WARMUP = 5
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class BenchSettings:
    """How to measure models.

    Attributes:
        runs: Minimum number of timed invokes.
        warmup: Untimed invokes between the first invoke and the timed ones.
        min_seconds: Minimum wall time of the timed invokes; runs continue
            until both ``runs`` and ``min_seconds`` are reached.
        threads: Interpreter threads.
        xnnpack: Whether to use the runtime's default delegates (XNNPACK).
        cpu: Core to pin each measuring process to, or ``None``.
        input_path: ``.npy``/``.npz`` input, or ``None`` for seeded random input.
        runtime: Runtime name, or ``None`` for the first installed one.
        timeout_s: Wall-time limit per model for an isolated measurement.
        python: Interpreter that runs the measuring child processes, or ``None``
            for this one (``sys.executable``).
        seed: Seed of the random input.
        api: ``interpreter`` or ``compiled`` (LiteRT's CompiledModel, ``compiled.py``).
        accelerator: ``cpu``, ``gpu`` or ``npu`` (``gpu``/``npu`` with ``compiled`` only).
    """

    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    min_seconds: float = DEFAULT_MIN_SECONDS
    threads: int = 1
    xnnpack: bool = True
    cpu: int | None = None
    input_path: str | None = None
    runtime: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    python: str | None = None
    seed: int = 0
    api: str = "interpreter"
    accelerator: str = "cpu"

    def __post_init__(self) -> None:
        problems = []
        if self.runs < 1:
            problems.append(f"runs must be at least 1; received {self.runs}")
        if self.warmup < 0:
            problems.append(f"warmup must be 0 or more; received {self.warmup}")
        if self.min_seconds < 0:
            problems.append(f"min_seconds must be 0 or more; received {self.min_seconds}")
        if self.threads < 1:
            problems.append(f"threads must be at least 1; received {self.threads}")
        if self.cpu is not None and self.cpu < 0:
            problems.append(f"cpu must be a core number (0 or more); received {self.cpu}")
        if self.timeout_s <= 0:
            problems.append(f"timeout must be positive; received {self.timeout_s}")
        if self.runtime is not None and self.runtime not in RUNTIME_NAMES:
            problems.append(
                f"runtime must be one of {', '.join(RUNTIME_NAMES)}; received {self.runtime!r}"
            )
        if self.api not in ("interpreter", "compiled"):
            problems.append(f"api must be interpreter or compiled; received {self.api!r}")
        if self.accelerator not in ("cpu", "gpu", "npu"):
            problems.append(f"accelerator must be cpu, gpu or npu; received {self.accelerator!r}")
        elif self.accelerator != "cpu" and self.api != "compiled":
            problems.append(f"accelerator {self.accelerator} needs api compiled")
        if problems:
            raise ValueError("Invalid benchmark settings: " + "; ".join(problems) + ".")

    @property
    def python_executable(self) -> str:
        """The interpreter that runs measuring child processes."""
        return self.python or sys.executable

    def to_json(self, *, compare: bool) -> dict[str, Any]:
        """Returns the report's ``settings`` section.

        Args:
            compare: Whether the models were measured interleaved.

        Returns:
            The JSON-ready dictionary.
        """
        return {
            "runs": self.runs,
            "warmup": self.warmup,
            "min_seconds": self.min_seconds,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "cpu": self.cpu,
            "input": self.input_path,
            "compare": compare,
            "runtime": self.runtime,
            "timeout_s": self.timeout_s,
            "python": os.path.abspath(self.python_executable),
            "seed": self.seed,
            "api": self.api,
            "accelerator": self.accelerator,
        }
