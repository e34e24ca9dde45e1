"""Typed configuration of a build, shared by every stage.

Parsed once from the command line into frozen dataclasses, validated before any TensorFlow
import so that a wrong flag fails in milliseconds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config.enums import (
    AUTO_SPARSITY,
    AUTO_SPARSITY_GRID,
    DEFAULT_THRESHOLD,
    FINETUNE_AUGMENTATIONS,
    OPERATING_RULES,
    STRUCTURED_AUTO_GRID,
    Activations,
    Decide,
    LrSchedule,
    PruneSchedule,
    PruneScope,
    QuantizedIO,
    RuntimeTarget,
    StructuredCriterion,
    choices,
)
from pipeline.config.gates import GatesConfig
from pipeline.config.inventory import Device, resolve
from pipeline.config.medmnist import is_spec, parse_spec
from pipeline.errors import ConfigError


def _one_of(kind: type[enum.Enum]) -> str:
    """`a, b or c`: the values of an enum for an error message."""
    *head, last = choices(kind)
    return f"{', '.join(head)} or {last}" if head else last


@dataclass(frozen=True)
class PruneConfig:
    """Threshold pruning w' = w * 1{|w| >= threshold} (and b' = b * 1{|b| >= threshold}).

    At most one of `target_sparsity` and `threshold` is set; with neither, the sparsity is
    `auto`: the largest of `auto_grid` whose validation AUROC stays within `max_prune_drop`
    of the original model's. A target sparsity of 0 skips pruning.
    """

    target_sparsity: float | str | None = None  # S in [0, 1), or AUTO_SPARSITY
    threshold: float | None = None
    scope: PruneScope = PruneScope.GLOBAL
    prune_biases: bool = False
    finetune_epochs: int = 0
    schedule: PruneSchedule = PruneSchedule.ONESHOT
    initial_sparsity: float = 0.0  # polynomial schedule only
    prune_frequency: int = 10  # optimizer steps between mask updates (polynomial)
    include: tuple[str, ...] = ()  # fnmatch patterns of layer names; empty: all
    exclude: tuple[str, ...] = ()
    keep_first_last_dense: bool = False  # leave the first and last prunable layer unpruned
    max_prune_drop: float = 0.01  # auto: allowed drop of validation AUROC
    auto_grid: tuple[float, ...] = AUTO_SPARSITY_GRID

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", PruneScope(self.scope))
        object.__setattr__(self, "schedule", PruneSchedule(self.schedule))
        if self.target_sparsity is None and self.threshold is None:
            object.__setattr__(self, "target_sparsity", AUTO_SPARSITY)
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "auto_grid", tuple(float(s) for s in self.auto_grid))
        if self.target_sparsity is not None and self.threshold is not None:
            raise ConfigError(
                "Pruning needs at most one of a target sparsity and a threshold; received "
                f"sparsity={self.target_sparsity}, threshold={self.threshold}. "
                "Pass --sparsity S or --threshold T, not both."
            )
        if isinstance(self.target_sparsity, str):
            if self.target_sparsity != AUTO_SPARSITY:
                raise ConfigError(
                    f"--sparsity must be a number in [0, 1) or '{AUTO_SPARSITY}'; received "
                    f"'{self.target_sparsity}'."
                )
        elif self.target_sparsity is not None and not 0.0 <= self.target_sparsity < 1.0:
            raise ConfigError(
                f"--sparsity must be in [0, 1); received {self.target_sparsity}. "
                "Use e.g. --sparsity 0.5 to zero half of the weights, 0 to skip pruning, or "
                f"'{AUTO_SPARSITY}' to pick the largest that keeps validation AUROC."
            )
        if self.threshold is not None and not 0.0 <= self.threshold < math.inf:
            raise ConfigError(
                f"--threshold must be a finite magnitude >= 0; received {self.threshold}. "
                "Weights with |w| below it are set to zero."
            )
        if self.finetune_epochs < 0:
            raise ConfigError(f"--finetune-epochs must be >= 0; received {self.finetune_epochs}.")
        if not 0.0 <= self.initial_sparsity < 1.0:
            raise ConfigError(
                f"--initial-sparsity must be in [0, 1); received {self.initial_sparsity}."
            )
        if self.prune_frequency < 1:
            raise ConfigError(
                f"--prune-frequency must be >= 1 optimizer step; received {self.prune_frequency}."
            )
        if not -1.0 <= self.max_prune_drop <= 1.0:
            raise ConfigError(
                f"--max-prune-drop must be an AUROC difference in [-1, 1]; received "
                f"{self.max_prune_drop}. Use e.g. 0.01 to accept one point of AUROC."
            )
        if not self.auto_grid or not all(0.0 < s < 1.0 for s in self.auto_grid):
            raise ConfigError(
                f"The auto sparsity grid must hold values in (0, 1); received {self.auto_grid}."
            )
        for pattern in (*self.include, *self.exclude):
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(
                    f"Layer patterns must be non-empty fnmatch patterns such as 'conv*'; "
                    f"received {pattern!r}."
                )
        if self.schedule is PruneSchedule.POLYNOMIAL:
            if self.threshold is not None:
                raise ConfigError(
                    f"--prune-schedule polynomial ramps a sparsity; received --threshold "
                    f"{self.threshold}. Pass --sparsity S (or '{AUTO_SPARSITY}') instead, or "
                    "use --prune-schedule oneshot with a threshold."
                )
            if self.finetune_epochs < 1:
                raise ConfigError(
                    "--prune-schedule polynomial raises the sparsity over the fine-tuning "
                    f"steps; received --finetune-epochs {self.finetune_epochs}. Pass "
                    "--finetune-epochs N with N >= 1."
                )
            if (
                isinstance(self.target_sparsity, float | int)
                and self.initial_sparsity > self.target_sparsity
            ):
                raise ConfigError(
                    f"--initial-sparsity {self.initial_sparsity} is above the final "
                    f"--sparsity {self.target_sparsity}; the polynomial schedule only raises "
                    "sparsity. Pass an initial sparsity <= the final one."
                )

    @property
    def auto(self) -> bool:
        """Whether the sparsity is searched (`--sparsity auto`)."""
        return self.target_sparsity == AUTO_SPARSITY


@dataclass(frozen=True)
class StructuredConfig:
    """Structured pruning: whole output channels of Conv/Dense layers are removed and a
    smaller model is rebuilt (see pipeline/structured.py).

    Channels are ranked by their filter norm divided by the mean filter norm of their
    layer. With `sparsity` R the lowest R of the prunable channels go (over all layers in
    global scope, in each layer in layer scope); with `threshold` T every channel whose
    normalised norm is below T goes. No layer drops below min(width, `min_channels`). With
    `channel_multiple` M > 1 every shrunk layer keeps a multiple of M channels (the nearest,
    at least M; a layer of width <= M stays whole): int8 kernels (XNNPACK) work in tiles of
    8 or 16 channels, so aligned widths run faster than the MAC count says.

    With `drop_blocks` N > 0 the N residual branches that add least to their skip input
    (mean ||branch|| / ||skip|| over training images) are removed whole first, channels
    after: a removed branch takes its ops with it, which narrowing cannot (each op has a
    fixed cost on the device). Off when none of sparsity, threshold and drop_blocks is set.

    With `sparsity` `auto` the fractions of `auto_grid` are tried from the largest down,
    each as the whole step from the original model (the `drop_blocks`, the channels R, the
    fine-tuning recipe), and judged on validation as `--sparsity auto` judges its points:
    AUROC (fine-tuned if fine-tuned, else pruned) within `--max-prune-drop` of the original
    and, given an operating point, sensitivity, specificity and Brier score within their
    budgets. The first R in budget is kept and smaller ones are not tried, so the cost is
    one structured step per point tried. When none is in budget (or the original's
    validation AUROC is undefined) there is no structured pruning at all.
    """

    sparsity: float | str | None = None  # R in [0, 1) of prunable channels, or AUTO_SPARSITY
    threshold: float | None = None  # T >= 0 on normalised filter norms
    criterion: StructuredCriterion = StructuredCriterion.L1
    scope: PruneScope = PruneScope.GLOBAL
    min_channels: int = 4
    channel_multiple: int = 1
    finetune_epochs: int = 0
    drop_blocks: int = 0  # residual branches removed whole, before channels
    # fine-tuning recipe of the rebuilt model (see pipeline.prune.finetune)
    augment: tuple[str, ...] = ()  # random image transforms of FINETUNE_AUGMENTATIONS
    lr_schedule: LrSchedule = LrSchedule.CONSTANT
    distill: float = 0.0  # weight of the unpruned model's probabilities in the targets
    auto_grid: tuple[float, ...] = STRUCTURED_AUTO_GRID  # `auto`: R tried, largest first
    # `auto` only: the predicted int8 speedup over the unpruned int8 file to reach
    # (pipeline.prune.structured.speed); None: the largest R in budget, by MACs
    speedup_target: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "criterion", StructuredCriterion(self.criterion))
        object.__setattr__(self, "auto_grid", tuple(float(r) for r in self.auto_grid))
        if not self.auto_grid or not all(0.0 < r < 1.0 for r in self.auto_grid):
            raise ConfigError(
                f"The structured auto grid must hold channel fractions in (0, 1); received "
                f"{self.auto_grid}. E.g. {STRUCTURED_AUTO_GRID}."
            )
        object.__setattr__(self, "lr_schedule", LrSchedule(self.lr_schedule))
        object.__setattr__(self, "augment", tuple(dict.fromkeys(self.augment)))
        unknown = [a for a in self.augment if a not in FINETUNE_AUGMENTATIONS]
        if unknown:
            raise ConfigError(
                f"--structured-augment must be one of {', '.join(FINETUNE_AUGMENTATIONS)}; "
                f"received {', '.join(unknown)}. Repeat the flag for several, e.g. "
                "--structured-augment hflip --structured-augment shift."
            )
        if not 0.0 <= self.distill <= 1.0:
            raise ConfigError(
                f"--structured-distill must be in [0, 1]; received {self.distill}. It is the "
                "weight of the unpruned model's probabilities in the fine-tuning targets "
                "(0: labels only, 0.5: half each, 1: the unpruned model only)."
            )
        if self.drop_blocks < 0:
            raise ConfigError(
                f"--drop-blocks must be >= 0; received {self.drop_blocks}. It is the number of "
                "residual branches to remove (0 keeps them all)."
            )
        object.__setattr__(self, "scope", PruneScope(self.scope))
        if self.sparsity is not None and self.threshold is not None:
            raise ConfigError(
                "Structured pruning needs at most one of a channel sparsity and a threshold; "
                f"received --structured-sparsity {self.sparsity} and --structured-threshold "
                f"{self.threshold}. Pass one of them."
            )
        if isinstance(self.sparsity, str):
            if self.sparsity != AUTO_SPARSITY:
                raise ConfigError(
                    f"--structured-sparsity must be a number in [0, 1) or '{AUTO_SPARSITY}'; "
                    f"received '{self.sparsity}'. Use e.g. --structured-sparsity 0.5, or "
                    f"'{AUTO_SPARSITY}' to pick the largest R that keeps validation AUROC."
                )
        elif self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise ConfigError(
                f"--structured-sparsity must be in [0, 1); received {self.sparsity}. Use e.g. "
                "--structured-sparsity 0.5 to remove half of the prunable channels, or "
                f"'{AUTO_SPARSITY}' to pick the largest R that keeps validation AUROC."
            )
        if self.threshold is not None and not 0.0 <= self.threshold < math.inf:
            raise ConfigError(
                f"--structured-threshold must be a finite value >= 0; received "
                f"{self.threshold}. It is compared with each filter's norm divided by its "
                "layer's mean filter norm: e.g. 0.5 removes filters below half the mean."
            )
        if self.min_channels < 1:
            raise ConfigError(f"--min-channels must be >= 1; received {self.min_channels}.")
        if self.channel_multiple < 1:
            raise ConfigError(
                f"--channel-multiple must be >= 1; received {self.channel_multiple}. Use 1 to "
                "keep exact widths, 8 or 16 to align them with int8 kernel tiles."
            )
        if self.finetune_epochs < 0:
            raise ConfigError(
                f"--structured-finetune-epochs must be >= 0; received {self.finetune_epochs}."
            )
        self._check_speedup_target()

    def _check_speedup_target(self) -> None:
        target = self.speedup_target
        if target is None:
            return
        if not 1.0 < target < math.inf:
            raise ConfigError(
                f"--speedup-target must be a finite speedup > 1; received {target}. E.g. "
                "--speedup-target 2 asks for half the unpruned int8 file's latency."
            )
        if self.sparsity != AUTO_SPARSITY:
            raise ConfigError(
                f"--speedup-target {target:g} needs --structured-sparsity {AUTO_SPARSITY} "
                f"(the search for the cut that meets it); received --structured-sparsity "
                f"{self.sparsity}. Pass --structured-sparsity {AUTO_SPARSITY}, or leave out "
                "--speedup-target."
            )

    @property
    def enabled(self) -> bool:
        return self.sparsity is not None or self.threshold is not None or self.drop_blocks > 0

    @property
    def channels(self) -> bool:
        """Whether channels are removed (else only residual branches)."""
        return self.sparsity is not None or self.threshold is not None

    @property
    def auto(self) -> bool:
        """Whether the channel fraction is searched (`--structured-sparsity auto`)."""
        return self.sparsity == AUTO_SPARSITY


@dataclass(frozen=True)
class QuantizeConfig:
    """Full-integer post-training quantization and its verification."""

    calibration_samples: int = 200
    io: str = QuantizedIO.INT8.value  # a QuantizedIO value, kept as a plain string
    activations: str = Activations.INT8.value  # an Activations value (int16: 16x8 mode)
    sparse_encoding: bool = False
    max_auroc_drop: float = 0.01
    remedy: bool = True
    remedy_int16: bool = False  # 16x8 is accurate but not XNNPACK-accelerated: opt in
    runtimes: tuple[RuntimeTarget, ...] = (RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES)
    require_runtimes: tuple[RuntimeTarget | str, ...] = ()  # a str names a device
    runtime_python: Path | None = None

    def __post_init__(self) -> None:
        if self.calibration_samples < 1:
            raise ConfigError(
                f"--calibration-samples must be >= 1; received {self.calibration_samples}."
            )
        if self.io not in choices(QuantizedIO):
            raise ConfigError(f"--io must be {_one_of(QuantizedIO)}; received '{self.io}'.")
        if self.activations not in choices(Activations):
            raise ConfigError(
                f"--activations must be {_one_of(Activations)}; received '{self.activations}'."
            )
        if self.activations == Activations.INT16 and self.io == QuantizedIO.UINT8:
            raise ConfigError(
                "--io uint8 cannot be combined with --activations int16 (16x8 mode has int16 "
                "or float32 edges). Use --io int8 (int16 edges) or --io float32."
            )
        if not self.max_auroc_drop >= 0:
            raise ConfigError(
                f"--val-max-int8-auroc-drop must be >= 0; received {self.max_auroc_drop}."
            )
        needs_python = RuntimeTarget.TFLITE_RUNTIME in (*self.runtimes, *self.require_runtimes)
        if needs_python and self.runtime_python is None:
            raise ConfigError(
                "Verifying on tflite-runtime needs --runtime-python PATH: a Python (e.g. a "
                "numpy<2 venv) where `import tflite_runtime` works."
            )
        if self.runtime_python is not None and not self.runtime_python.exists():
            raise ConfigError(
                f"--runtime-python '{self.runtime_python}' does not exist; expected the path "
                "of a Python executable with tflite-runtime installed."
            )


@dataclass(frozen=True)
class DeviceConfig:
    """Bedside devices reached over SSH: the int8 model is verified and every variant
    benched on each (pipeline/device). `targets` are ssh:// addresses or inventory names."""

    targets: tuple[str, ...] = ()
    inventory: Path | None = None
    identity: Path | None = None
    python: str | None = None
    known_hosts: Path | None = None
    devices: tuple[Device, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        devices = resolve(
            self.targets, self.inventory, self.identity, self.python, self.known_hosts
        )
        object.__setattr__(self, "devices", devices)


@dataclass(frozen=True)
class BenchConfig:
    """Latency and memory measurement through device_bench."""

    runs: int = 100
    warmup: int = 10
    min_seconds: float = 0.5
    threads: int = 1
    enabled: bool = True
    profile: bool = False

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0 or self.threads < 1 or self.min_seconds < 0:
            raise ConfigError(
                "Benchmark settings must be runs >= 1, warmup >= 0, threads >= 1, "
                f"min_seconds >= 0; received runs={self.runs}, warmup={self.warmup}, "
                f"threads={self.threads}, min_seconds={self.min_seconds}."
            )


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how raw values become model inputs.

    `path` is an .npz, a .csv, an image/DICOM folder or `medmnist:NAME[@SIZE]`. Values
    become x * scale + offset, or (x - mean) / std; the two forms are exclusive.
    """

    path: Path | None = None  # None: the embedded Wisconsin breast-cancer data
    scale: float | None = None
    offset: float | None = None
    seed: int = 0
    mean: tuple[float, ...] | None = None  # scalar or per channel/feature
    std: tuple[float, ...] | None = None
    resize: tuple[int, int] | None = None  # (height, width) of images
    label_column: str = "label"  # tabular CSV, or a folder's label CSV
    labels: Path | None = None  # `filename,label` CSV for an image/DICOM folder
    calibration: Path | None = None  # int8 calibration samples instead of the train split
    window_center: float | None = None  # DICOM VOI window onto 0..255
    window_width: float | None = None
    window_from_file: bool = False  # each DICOM file's own WindowCenter/WindowWidth
    host_preprocessing: bool = False  # the model's leading Rescaling/Resizing run on the host
    subgroups: tuple[str, ...] = ()  # per-case attributes the verdict is also given for
    subgroup_bands: tuple[str, ...] = ()  # `NAME=e0,e1,...`: band edges of a numeric one

    @property
    def bands(self) -> dict[str, tuple[float, ...]]:
        """Band edges by subgroup name, from `subgroup_bands` (checked at construction)."""
        from pipeline.config.subgroups import parse_bands

        return parse_bands(self.subgroup_bands, self.subgroups)

    def __post_init__(self) -> None:
        object.__setattr__(self, "subgroups", tuple(dict.fromkeys(self.subgroups)))
        object.__setattr__(self, "subgroup_bands", tuple(self.subgroup_bands))
        _ = self.bands  # a malformed --subgroup-bands is a ConfigError now
        if (self.scale is not None or self.offset is not None) and (
            self.mean is not None or self.std is not None
        ):
            raise ConfigError(
                "Pass either --scale/--offset or --mean/--std, not both; received "
                f"scale={self.scale}, offset={self.offset}, mean={self.mean}, std={self.std}."
            )
        for name in ("scale", "offset"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"--{name} must be a finite number; received {value}.")
        if self.mean is not None and not all(math.isfinite(v) for v in self.mean):
            raise ConfigError(f"--mean must hold finite numbers; received {self.mean}.")
        if self.std is not None and not all(math.isfinite(v) and v > 0 for v in self.std):
            raise ConfigError(
                f"--std must hold finite numbers > 0; received {self.std}. Use e.g. --std 0.5 "
                "or one value per channel: --std 0.229,0.224,0.225."
            )
        if (
            self.mean is not None
            and self.std is not None
            and 1 not in (len(self.mean), len(self.std))
            and len(self.mean) != len(self.std)
        ):
            raise ConfigError(
                f"--mean has {len(self.mean)} values and --std {len(self.std)}; pass one value "
                "or the same number (one per channel/feature) for each."
            )
        if self.resize is not None and not all(int(v) >= 1 for v in self.resize):
            raise ConfigError(f"--resize needs a height and width >= 1; received {self.resize}.")
        if (self.window_center is None) != (self.window_width is None):
            raise ConfigError(
                "A DICOM window needs both --window-center C and --window-width W; received "
                f"center={self.window_center}, width={self.window_width}."
            )
        if self.window_width is not None and not self.window_width >= 1:
            raise ConfigError(f"--window-width must be >= 1; received {self.window_width}.")
        if self.window_from_file and self.window_center is not None:
            raise ConfigError(
                "Pass either --window-from-file or --window-center/--window-width, not both."
            )
        if not self.label_column:
            raise ConfigError("--label-column must name a column; received ''.")
        for source in (self.path, self.calibration):
            if is_spec(source):
                parse_spec(str(source))  # unknown dataset/size: ConfigError now


def parse_operating_point(rule: str) -> tuple[str, float | None]:
    """`threshold=T`, `sensitivity=S`, `specificity=S` or `youden` as (name, value).

    Raises:
        ConfigError: an unknown rule or a value outside its range.
    """
    name, sep, value = (part.strip() for part in rule.strip().partition("="))
    usage = (
        "Use threshold=T (a fixed P(positive)), sensitivity=S or specificity=S (chosen on "
        "the validation split) or youden."
    )
    if name not in OPERATING_RULES or (name == "youden") == bool(sep):
        raise ConfigError(f"--operating-point received '{rule}'. {usage}")
    if name == "youden":
        return name, None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"--operating-point '{rule}' needs a number after '='. {usage}") from None
    low_open = name != "threshold"  # a sensitivity of 0 selects no threshold
    if not (0.0 < number <= 1.0 if low_open else 0.0 <= number <= 1.0):
        raise ConfigError(
            f"--operating-point {name} must be in {'(0, 1]' if low_open else '[0, 1]'}; "
            f"received {value}. E.g. sensitivity=0.95 or threshold=0.3."
        )
    return name, number


@dataclass(frozen=True)
class EvaluationConfig:
    """How a binary prediction is made from the positive class's probability.

    `operating_point` chooses the threshold: `threshold=T` fixes it (`decision_threshold`
    is its synonym and is set to T), the other rules choose it on the validation split from
    the float32 model. `bootstrap` resamples the test split for the 95% intervals;
    `max_sensitivity_drop`, `max_specificity_drop` and `max_brier_increase` are the
    validation budgets of auto sparsity and of the int8 remedies, at the operating point.
    """

    decision_threshold: float = DEFAULT_THRESHOLD
    positive_class: int | str | None = None  # index or class name; None: the dataset's own
    operating_point: str | None = None  # None: threshold=decision_threshold
    bootstrap: int = 2000
    max_sensitivity_drop: float = 0.02
    max_specificity_drop: float = 0.05
    max_brier_increase: float = 0.01
    min_subgroup_cases: int = 10  # positives (and negatives) a subgroup needs to be judged
    decide: Decide = Decide.INTERVAL
    decision_confidence: float = 0.95

    @property
    def rule(self) -> tuple[str, float | None]:
        """The operating-point rule as (name, value)."""
        if self.operating_point is None:
            return "threshold", self.decision_threshold
        return parse_operating_point(self.operating_point)

    def __post_init__(self) -> None:
        if not 0.0 <= self.decision_threshold <= 1.0:
            raise ConfigError(
                f"--decision-threshold must be a probability in [0, 1]; received "
                f"{self.decision_threshold}. Cases with P(positive) >= threshold are positive."
            )
        if self.operating_point is not None:
            name, value = parse_operating_point(self.operating_point)
            fixed = self.decision_threshold != DEFAULT_THRESHOLD
            if fixed and (name != "threshold" or value != self.decision_threshold):
                raise ConfigError(
                    f"--decision-threshold {self.decision_threshold} conflicts with "
                    f"--operating-point {self.operating_point}. --decision-threshold T is "
                    "a synonym of --operating-point threshold=T; pass only one of them."
                )
            if name == "threshold":
                object.__setattr__(self, "decision_threshold", value)
        if self.bootstrap != 0 and not 200 <= self.bootstrap <= 100_000:
            raise ConfigError(
                f"--bootstrap must be 0 (no intervals) or between 200 and 100000 resamples; "
                f"received {self.bootstrap}. The default 2000 gives stable 95% intervals."
            )
        for name in ("sensitivity_drop", "specificity_drop", "brier_increase"):
            value = getattr(self, f"max_{name}")
            if not 0.0 <= value <= 1.0:
                flag = "--val-max-" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} must be in [0, 1]; received {value}. E.g. 0.02 lets validation "
                    "sensitivity fall by two points at the operating point; 1 turns a budget "
                    "off."
                )
        if self.min_subgroup_cases < 1:
            raise ConfigError(
                f"--min-subgroup-cases must be >= 1; received {self.min_subgroup_cases}. "
                "E.g. 10: a subgroup is judged with at least 10 positives and 10 negatives."
            )
        object.__setattr__(self, "decide", Decide(self.decide))
        if not 0.5 <= self.decision_confidence < 1.0:
            raise ConfigError(
                f"--decision-confidence must be in [0.5, 1); received "
                f"{self.decision_confidence}. E.g. 0.95: a variant is within a validation "
                "budget when the one-sided 95% upper bound of its loss is."
            )
        if isinstance(self.positive_class, int) and self.positive_class < 0:
            raise ConfigError(
                f"--positive-class must be a class index >= 0 or a class name; received "
                f"{self.positive_class}."
            )
        if isinstance(self.positive_class, str) and not self.positive_class.strip():
            raise ConfigError("--positive-class must not be empty.")


ONNX_OPSETS = (13, 18)  # QDQ per-axis needs 13; tf2onnx 1.17 knows up to 18


@dataclass(frozen=True)
class ExportConfig:
    """Optional ONNX export (the `onnx` extra) and how its parity gates the build."""

    onnx: bool = False
    opset: int = 17
    require_parity: bool = False  # exit 1 when an ONNX file does not match its source
    html: bool = False  # also write report.html beside report.md

    def __post_init__(self) -> None:
        low, high = ONNX_OPSETS
        if not low <= self.opset <= high:
            raise ConfigError(
                f"--opset must be in [{low}, {high}] (tf2onnx 1.17 with QDQ int8); received "
                f"{self.opset}. The default 17 runs on onnxruntime >= 1.11."
            )


@dataclass(frozen=True)
class ReleaseConfig:
    """Where a finished build is published: an MLflow tracking server and model registry.

    Not part of the resolved job (job.resolved.toml, the manifest): it says where a build
    goes, not what it is, and a tracking URI may carry credentials.
    """

    mlflow_uri: str | None = None  # also $MLFLOW_TRACKING_URI (the CLI reads it)
    mlflow_experiment: str = "bedside-lite"
    register_model: str | None = None  # a registered model name: a version of model_int8

    def __post_init__(self) -> None:
        if not self.mlflow_experiment.strip():
            raise ConfigError(
                "--mlflow-experiment must be a non-empty experiment name; received "
                f"{self.mlflow_experiment!r}. Write e.g. --mlflow-experiment bedside-lite."
            )
        if self.register_model is not None and not self.register_model.strip():
            raise ConfigError(
                "--register-model must be a non-empty registered model name; received "
                f"{self.register_model!r}."
            )
        if self.register_model is not None and self.mlflow_uri is None:
            raise ConfigError(
                f"--register-model {self.register_model} needs a tracking server: pass "
                "--mlflow URI ([release] mlflow_uri) or set MLFLOW_TRACKING_URI."
            )


@dataclass(frozen=True)
class BuildConfig:
    """Everything one `bedside-lite build` run needs."""

    model: Path | None = None  # None: train the embedded reference classifier
    data: DataConfig = field(default_factory=DataConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    out: Path = Path("build")
    prune: PruneConfig = field(default_factory=PruneConfig)
    structured: StructuredConfig = field(default_factory=StructuredConfig)
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    gates: GatesConfig = field(default_factory=GatesConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    overwrite: bool = False
    seed: int = 0
    unsafe_load: bool = False  # allow Lambda layers (runs code from the model file)
    intended_use: str | None = None  # the model card's intended use ([model] intended_use)

    def __post_init__(self) -> None:
        names = [d.name for d in self.device.devices]
        for target in self.quantize.require_runtimes:
            if not isinstance(target, RuntimeTarget) and target not in names:
                runtimes = ", ".join(t.value for t in RuntimeTarget)
                devices = f" or a device of this build ({', '.join(names)})" if names else ""
                raise ConfigError(
                    f"[gates] require_runtimes must be an array of {runtimes}{devices}; "
                    f"received '{target}'. A device name needs --device NAME (or [device] "
                    "targets) too."
                )
