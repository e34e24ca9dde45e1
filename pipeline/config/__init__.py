"""The build's configuration: frozen dataclasses and `str` enums, and the TOML job file.

`enums` spells every choice; `types` holds the dataclasses a run is made of (`prune` those of
the `[prune]` section); `gates` the
table of release gates and their config; `options` the option registry every parser, job
key, template and README row is generated from; `jobfile` reads and writes job files.
"""

from pipeline.config.enums import (
    AUTO_SPARSITY,
    AUTO_SPARSITY_GRID,
    DEFAULT_THRESHOLD,
    FINETUNE_AUGMENTATIONS,
    OPERATING_RULES,
    SCHEMA_VERSION,
    STRUCTURED_AUTO_GRID,
    Activations,
    Augmentation,
    Decide,
    LrSchedule,
    OperatingRule,
    PruneSchedule,
    PruneScope,
    QuantizedIO,
    RuntimeTarget,
    StructuredCriterion,
    SweepPreference,
    Variant,
    choices,
)
from pipeline.config.gates import BASELINE_GATES, GATE_LIMITS, GATES, GatesConfig, GateSpec
from pipeline.config.prune import (
    SPEED_TARGET_RECIPE,
    PruneConfig,
    StructuredConfig,
    StructuredRecipe,
)
from pipeline.config.sweep import SweepOptions
from pipeline.config.types import (
    ONNX_OPSETS,
    BenchConfig,
    BuildConfig,
    DataConfig,
    DeviceConfig,
    EvaluationConfig,
    ExportConfig,
    QuantizeConfig,
    ReleaseConfig,
    parse_operating_point,
)

__all__ = [
    "GATES",
    "Activations",
    "Augmentation",
    "GateSpec",
    "OperatingRule",
    "QuantizedIO",
    "SweepPreference",
    "choices",
    "AUTO_SPARSITY",
    "AUTO_SPARSITY_GRID",
    "BASELINE_GATES",
    "DEFAULT_THRESHOLD",
    "FINETUNE_AUGMENTATIONS",
    "GATE_LIMITS",
    "ONNX_OPSETS",
    "OPERATING_RULES",
    "SCHEMA_VERSION",
    "STRUCTURED_AUTO_GRID",
    "BenchConfig",
    "BuildConfig",
    "DataConfig",
    "DeviceConfig",
    "ReleaseConfig",
    "EvaluationConfig",
    "ExportConfig",
    "GatesConfig",
    "LrSchedule",
    "PruneConfig",
    "SPEED_TARGET_RECIPE",
    "PruneSchedule",
    "Decide",
    "PruneScope",
    "QuantizeConfig",
    "RuntimeTarget",
    "StructuredConfig",
    "StructuredRecipe",
    "StructuredCriterion",
    "SweepOptions",
    "Variant",
    "parse_operating_point",
]
