"""The benchmark report: per-model results and the JSON document the pipeline reads.

Every model entry always carries every key (``null`` when unknown), so a
consumer never needs to guess which keys a failed model has.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field, replace
from typing import Any

from device_bench.profile import ModelProfile
from device_bench.settings import BenchSettings
from device_bench.stats import LatencyStats
from device_bench.status import Status
from device_bench.version import __version__

SCHEMA_VERSION = 1
TOOL = "device_bench"


@dataclass(frozen=True)
class InputInfo:
    """The input tensor a model was measured with.

    Attributes:
        shape: Allocated input shape, batch first.
        dtype: numpy dtype name.
        scale: Quantization scale, or ``None`` for float inputs.
        zero_point: Quantization zero point, or ``None`` for float inputs.
        source: ``"random"`` (seeded) or ``"file"``.
    """

    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None
    source: str

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form used in reports."""
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputInfo:
        """Inverse of ``to_json``."""
        return cls(
            shape=tuple(data["shape"]),
            dtype=data["dtype"],
            scale=data["scale"],
            zero_point=data["zero_point"],
            source=data["source"],
        )


@dataclass(frozen=True)
class MemoryReport:
    """Resident memory of the measuring process at each step, in MiB.

    Attributes:
        rss_start_mb: Before the runtime is imported.
        rss_after_import_mb: After importing the runtime.
        rss_after_interpreter_mb: After constructing the interpreter.
        rss_after_allocate_mb: After ``allocate_tensors``.
        peak_rss_mb: Peak RSS (``VmHWM``) after the timed runs.
        model_mb: ``peak_rss_mb - rss_after_import_mb``: what the model costs
            on top of the runtime.
        arena_bytes: Sum of the sizes of non-constant tensors (see
            ``bench.arena_estimate``), or ``None`` when the runtime hides ops.
    """

    rss_start_mb: float | None = None
    rss_after_import_mb: float | None = None
    rss_after_interpreter_mb: float | None = None
    rss_after_allocate_mb: float | None = None
    peak_rss_mb: float | None = None
    model_mb: float | None = None
    arena_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form used in reports."""
        return {
            "rss_start_mb": self.rss_start_mb,
            "rss_after_import_mb": self.rss_after_import_mb,
            "rss_after_interpreter_mb": self.rss_after_interpreter_mb,
            "rss_after_allocate_mb": self.rss_after_allocate_mb,
            "peak_rss_mb": self.peak_rss_mb,
            "model_mb": self.model_mb,
            "arena_bytes": self.arena_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemoryReport:
        """Inverse of ``to_json``."""
        return cls(**data)

    def with_peak(self, peak_rss_mb: float | None) -> MemoryReport:
        """Returns a copy with the peak (and the model's share of it) filled in."""
        model_mb = None
        if peak_rss_mb is not None and self.rss_after_import_mb is not None:
            model_mb = peak_rss_mb - self.rss_after_import_mb
        return replace(self, peak_rss_mb=peak_rss_mb, model_mb=model_mb)


@dataclass(frozen=True)
class ModelReport:
    """Everything measured (or the reason nothing was) for one model."""

    path: str
    status: Status
    reason: str | None = None
    exit_status: int | None = None
    signal: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    xnnpack: bool | None = None
    note: str | None = None
    file_bytes: int | None = None
    input: InputInfo | None = None
    init_ms: float | None = None
    first_invoke_ms: float | None = None
    runs: int = 0
    latency_ms: LatencyStats | None = None
    memory: MemoryReport | None = None
    ratio_to_first: dict[str, float] | None = None
    python: str | None = None
    stderr_tail: tuple[str, ...] = field(default=())
    profile: ModelProfile | None = None

    @property
    def ok(self) -> bool:
        """Whether the model was measured."""
        return self.status is Status.OK

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON form used in reports (every key always present)."""
        return {
            "path": self.path,
            "status": self.status.value,
            "reason": self.reason,
            "exit_status": self.exit_status,
            "signal": self.signal,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "note": self.note,
            "file_bytes": self.file_bytes,
            "input": self.input.to_json() if self.input else None,
            "init_ms": self.init_ms,
            "first_invoke_ms": self.first_invoke_ms,
            "runs": self.runs,
            "latency_ms": self.latency_ms.to_json() if self.latency_ms else None,
            "memory": self.memory.to_json() if self.memory else None,
            "ratio_to_first": self.ratio_to_first,
            "python": self.python,
            "stderr_tail": list(self.stderr_tail),
            "profile": self.profile.to_json() if self.profile else None,
        }


def host_info() -> dict[str, Any]:
    """Describes the machine the report was made on."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "system": platform.system(),
    }


def with_ratios(models: list[ModelReport]) -> list[ModelReport]:
    """Adds each model's p50 and mean relative to the first model's.

    Args:
        models: Reports in command-line order.

    Returns:
        The reports; ``ratio_to_first`` stays ``None`` for models without
        latency, and for all of them when the first model has none.
    """
    if not models or models[0].latency_ms is None or models[0].latency_ms.p50 <= 0:
        return models
    reference = models[0].latency_ms
    result = []
    for model in models:
        if model.latency_ms is None:
            result.append(model)
            continue
        ratio = {
            "p50": model.latency_ms.p50 / reference.p50,
            "mean": model.latency_ms.mean / reference.mean,
        }
        result.append(replace(model, ratio_to_first=ratio))
    return result


@dataclass(frozen=True)
class BenchReport:
    """A whole benchmark run."""

    settings: BenchSettings
    compare: bool
    models: tuple[ModelReport, ...]
    host: dict[str, Any] = field(default_factory=host_info)

    @property
    def all_ok(self) -> bool:
        """Whether every model was measured."""
        return all(model.ok for model in self.models)

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON report (``schema_version`` 1)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": TOOL,
            "version": __version__,
            "host": self.host,
            "settings": self.settings.to_json(compare=self.compare),
            "models": [model.to_json() for model in self.models],
        }
