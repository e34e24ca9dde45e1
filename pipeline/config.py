"""Typed configuration of a build, shared by every stage.

Parsed once from the command line into frozen dataclasses, validated before any TensorFlow
import so that a wrong flag fails in milliseconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError

SCHEMA_VERSION = 1


class PruneScope(str, enum.Enum):
    """How the magnitude threshold is chosen across layers."""

    GLOBAL = "global"  # one threshold over all prunable kernels
    LAYER = "layer"  # one threshold per kernel, each reaching the target sparsity


class Variant(str, enum.Enum):
    """Model variants the build produces; values are the report keys."""

    FLOAT32 = "float32"
    PRUNED_FLOAT32 = "pruned_float32"
    INT8 = "int8"

    @property
    def filename(self) -> str:
        return {
            Variant.FLOAT32: "model_float32.tflite",
            Variant.PRUNED_FLOAT32: "model_pruned_float32.tflite",
            Variant.INT8: "model_int8.tflite",
        }[self]


@dataclass(frozen=True)
class PruneConfig:
    """Threshold pruning w' = w * 1{|w| >= threshold}.

    Exactly one of `target_sparsity` and `threshold` is set.
    """

    target_sparsity: float | None = 0.5
    threshold: float | None = None
    scope: PruneScope = PruneScope.GLOBAL
    prune_biases: bool = False
    finetune_epochs: int = 0

    def __post_init__(self) -> None:
        if (self.target_sparsity is None) == (self.threshold is None):
            raise ConfigError(
                "Pruning needs exactly one of a target sparsity and a threshold; received "
                f"sparsity={self.target_sparsity}, threshold={self.threshold}. "
                "Pass --sparsity S or --threshold T, not both."
            )
        if self.target_sparsity is not None and not 0.0 <= self.target_sparsity < 1.0:
            raise ConfigError(
                f"--sparsity must be in [0, 1); received {self.target_sparsity}. "
                "Use e.g. --sparsity 0.5 to zero half of the weights, 0 to skip pruning."
            )
        if self.threshold is not None and not self.threshold >= 0.0:
            raise ConfigError(
                f"--threshold must be a magnitude >= 0; received {self.threshold}. "
                "Weights with |w| below it are set to zero."
            )
        if self.finetune_epochs < 0:
            raise ConfigError(
                f"--finetune-epochs must be >= 0; received {self.finetune_epochs}."
            )


@dataclass(frozen=True)
class QuantizeConfig:
    """Full-integer post-training quantization."""

    calibration_samples: int = 200

    def __post_init__(self) -> None:
        if self.calibration_samples < 1:
            raise ConfigError(
                f"--calibration-samples must be >= 1; received {self.calibration_samples}."
            )


@dataclass(frozen=True)
class BenchConfig:
    """Latency and memory measurement through device_bench."""

    runs: int = 100
    warmup: int = 10
    min_seconds: float = 0.5
    threads: int = 1
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.threads < 1 or self.min_seconds < 0:
            raise ConfigError(
                "Benchmark settings must be runs >= 1, warmup >= 0, threads >= 1, "
                f"min_seconds >= 0; received runs={self.runs}, warmup={self.warmup}, "
                f"threads={self.threads}, min_seconds={self.min_seconds}."
            )


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how raw values become model inputs (x * scale + offset)."""

    path: Path | None = None  # None: the embedded Wisconsin breast-cancer data
    scale: float | None = None
    offset: float | None = None
    seed: int = 0


@dataclass(frozen=True)
class BuildConfig:
    """Everything one `bedside-lite build` run needs."""

    model: Path | None = None  # None: train the embedded reference classifier
    data: DataConfig = field(default_factory=DataConfig)
    out: Path = Path("build")
    prune: PruneConfig = field(default_factory=PruneConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    overwrite: bool = False
    seed: int = 0
