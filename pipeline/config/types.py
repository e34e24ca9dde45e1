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
    DEFAULT_THRESHOLD,
    OPERATING_RULES,
    Activations,
    Decide,
    QuantizedIO,
    RuntimeTarget,
    choices,
)
from pipeline.config.gates import GatesConfig
from pipeline.config.inventory import LOCAL, Device, resolve, resolve_latency_target
from pipeline.config.medmnist import is_spec, parse_spec
from pipeline.config.prune import PruneConfig, StructuredConfig
from pipeline.errors import ConfigError


def _one_of(kind: type[enum.Enum]) -> str:
    """`a, b or c`: the values of an enum for an error message."""
    *head, last = choices(kind)
    return f"{', '.join(head)} or {last}" if head else last


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
    benched on each (pipeline/device). `targets` are ssh:// addresses or inventory names;
    `latency_device` is the device `--speedup-target` measures on (None: this machine)."""

    targets: tuple[str, ...] = ()
    inventory: Path | None = None
    identity: Path | None = None
    python: str | None = None
    known_hosts: Path | None = None
    # where --speedup-target measures: `local`, an ssh:// address or a device name; None:
    # the first (not emulated) device of the build, else this machine
    latency_target: str | None = None
    devices: tuple[Device, ...] = field(default=(), init=False, repr=False, compare=False)
    latency_device: Device | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        flags = (self.inventory, self.identity, self.python, self.known_hosts)
        named = self.latency_target not in (None, LOCAL)
        devices = resolve(self.targets, *flags, elsewhere=named)
        object.__setattr__(self, "devices", devices)
        device = resolve_latency_target(self.latency_target, devices, *flags)
        object.__setattr__(self, "latency_device", device)


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
        target = self.device.latency_target
        if target is not None and self.structured.speedup_target is None:
            raise ConfigError(
                f"--latency-target {target} says where --speedup-target measures; received "
                "no --speedup-target. Pass --speedup-target X (with --structured-sparsity "
                "auto), or leave out --latency-target."
            )
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
