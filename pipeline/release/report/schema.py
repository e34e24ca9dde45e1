"""The build report as dataclasses: `BuildReport.to_json()` is report.json (schema_version 1),
`BuildReport.from_json()` reads a stored one back.

Each record lists its fields in report.json's key order. A field marked `omit()` is left
out of the JSON when it is None (the key is absent, as in report.json today); any other
None is written as `null`. A `flat()` field's keys sit in its parent's object (the
binary-task rates inside a variant's metrics). `from_json` is strict: a missing key or a key
no record names raises ValueError, so a report never loses a key on its way through.

Blocks that a stage owns and whose keys depend on the method (pruning, quantization,
ONNX parity) are kept as their JSON objects behind typed read-only views.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipeline.release.report.record import (
    Interval,
    Record,
    View,
    flat,
    from_json_value,
    omit,
)

# --- model, data, operating point, artifacts -------------------------------------------


@dataclass(frozen=True)
class ModelInfo(Record):
    source: str
    input_shape: list[int | None]
    output_kind: str
    parameters: int
    intended_use: str | None = omit()  # [model] intended_use (the model card's)


@dataclass(frozen=True)
class SplitInfo(Record):
    samples: int
    shape: list[int]
    label_counts: list[int]


@dataclass(frozen=True)
class CalibrationData(Record):
    source: str
    samples: int


@dataclass(frozen=True)
class DataSummary(Record):
    source: str
    num_classes: int
    class_names: list[str] | None
    positive_class: int
    positive_class_name: str | None
    input_shape: list[int]
    splits: dict[str, SplitInfo]
    calibration: CalibrationData
    details: dict[str, Any]  # the loader's own description (format, files); nobody reads it
    warnings: list[str]
    preprocessing: dict[str, Any]  # preprocessing.json's recipe; read by the host, not here
    host_front: dict[str, Any] | None = omit()  # --host-preprocessing: the steps moved


@dataclass(frozen=True)
class ValidationRates(Record):
    sensitivity: float | None
    specificity: float | None
    brier: float | None


@dataclass(frozen=True)
class OperatingPointInfo(Record):
    rule: str
    threshold: float | None  # None: multi-class, the most probable class wins
    chosen_on: str | None
    validation: ValidationRates | None


@dataclass(frozen=True)
class Artifact(Record):
    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Provenance(Record):
    job: str
    manifest: str
    tflite_metadata: str
    embedded_sha256: Any  # as manifest.embed_files returns it


# --- metrics --------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryRates(Record):
    """A binary task's rates at the decision threshold (absent for multi-class)."""

    positive_class: int
    positive_class_name: str | None
    decision_threshold: float
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    tp: int
    fn: int
    fp: int
    tn: int


@dataclass(frozen=True)
class Reliability(Record):
    mean_predicted: list[float]
    observed: list[float]
    count: list[int]


@dataclass(frozen=True)
class Calibration(Record):
    ece: float
    brier: float
    bins: int
    basis: str
    reliability: Reliability


@dataclass(frozen=True)
class FlipCase(Record):
    """One test case whose decision differs from float32's (P of the positive class)."""

    index: int
    label: int
    float32: float
    variant: float
    flip: str
    subgroups: dict[str, str] | None = omit()  # with --subgroup: the case's values


@dataclass(frozen=True)
class Flips(Record):
    positive_missed: int
    positive_found: int
    negative_flagged: int
    negative_cleared: int
    cases: list[FlipCase]

    KINDS: ClassVar[tuple[str, ...]] = (
        "positive_missed",
        "positive_found",
        "negative_flagged",
        "negative_cleared",
    )

    def any_changed(self) -> bool:
        return any(getattr(self, k) for k in self.KINDS)


@dataclass(frozen=True)
class PairedDiff(Record):
    """A variant's metric minus float32's on the same resampled cases."""

    diff: float | None
    ci95: Interval | None


@dataclass(frozen=True)
class SubgroupInfo(Record):
    """`subgroups.<NAME>.<VALUE>`: a test-split group and whether a verdict rests on it."""

    n: int
    positives: int | None  # None for a multi-class task
    negatives: int | None
    judged: bool
    reason: str | None  # why not judged


@dataclass(frozen=True)
class GroupFlips(Record):
    """The four flip counts among a group's cases (they add up to the whole split's)."""

    positive_missed: int
    positive_found: int
    negative_flagged: int
    negative_cleared: int


@dataclass(frozen=True)
class SubgroupMetrics(Record):
    """`metrics.<variant>.subgroups.<NAME>.<VALUE>`; intervals for judged groups only."""

    n: int
    auroc: float | None = omit()  # binary: AUROC, rates at the operating point
    sensitivity: float | None = omit()
    specificity: float | None = omit()
    accuracy: float | None = omit()  # multi-class: accuracy and per-class recall
    per_class_recall: list[float | None] | None = omit()
    ci95: dict[str, Interval | None] | None = omit()
    vs_float32: dict[str, PairedDiff] | None = omit()
    flips: GroupFlips | None = omit()


@dataclass(frozen=True)
class Bootstrap(Record):
    replicates: int
    method: str
    seed: int


@dataclass(frozen=True)
class VariantMetrics(Record):
    """`metrics.<variant>`: one variant on the test split (validation in a sweep point)."""

    samples: int
    num_classes: int
    class_names: list[str] | None
    accuracy: float
    balanced_accuracy: float | None
    auroc: float | None
    auroc_average: str
    auroc_per_class: list[float | None] | None = omit()  # multi-class only
    per_class_recall: list[float | None] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    label_counts: list[int] = field(default_factory=list)
    prediction_counts: list[int] = field(default_factory=list)
    binary: BinaryRates | None = flat()
    agreement: float | None = None  # with float32's decisions; None for float32 itself
    calibration: Calibration | None = omit()  # absent for the ONNX variants
    flips: Flips | None = omit()  # binary .tflite variants only
    ci95: dict[str, Interval | None] | None = omit()  # with the bootstrap only
    vs_float32: dict[str, PairedDiff] | None = omit()  # variants other than float32
    bootstrap: Bootstrap | None = omit()
    subgroups: dict[str, dict[str, SubgroupMetrics]] | None = omit()  # with --subgroup

    @property
    def sensitivity(self) -> float | None:
        return None if self.binary is None else self.binary.sensitivity

    @property
    def specificity(self) -> float | None:
        return None if self.binary is None else self.binary.specificity

    @property
    def decision_threshold(self) -> float | None:
        return None if self.binary is None else self.binary.decision_threshold

    def value(self, metric: str) -> float | None:
        """A metric by its report name (`auroc`, `sensitivity`, ...); None when absent."""
        return getattr(self, metric, None)

    def interval(self, metric: str) -> Interval | None:
        return (self.ci95 or {}).get(metric)


# --- bench ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOk(Record):
    """`bench.<variant>` of a run that measured (`pipeline.device.local.summarize`)."""

    status: str
    runtime: str
    runtime_version: str | None
    threads: int | None
    xnnpack: bool | None
    note: str | None
    runs: int | None
    latency_ms: dict[str, float]  # p50, p90, p99, mean, min, max, std, p95 as measured
    init_ms: float | None
    first_invoke_ms: float | None
    peak_rss_mb: float
    model_mb: float | None
    arena_bytes: int | None
    ratio_to_float32: dict[str, float] | None
    runtime_python: BenchOk | BenchFailed | None = omit()  # --runtime-python's run
    # per --device: that device's summary with its description (`device`, `emulated`), or
    # {status, reason, device} when it could not be reached; read by device_bench_lines
    devices: dict[str, dict[str, Any]] | None = omit()
    # --profile: device_bench's per-op latency (`models[i].profile`)
    profile: dict[str, Any] | None = omit()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class BenchFailed(Record):
    """`bench.<variant>` when device_bench could not run the model."""

    status: str
    reason: str | None
    runtime: str | None
    threads: int | None
    runtime_python: BenchOk | BenchFailed | None = omit()
    devices: dict[str, dict[str, Any]] | None = omit()
    latency_ms: ClassVar[dict[str, float]] = {}
    peak_rss_mb: ClassVar[float | None] = None

    @property
    def ok(self) -> bool:
        return False


BenchSummary = BenchOk | BenchFailed


def read_bench(doc: Mapping[str, Any], strict: bool = True) -> dict[str, BenchSummary]:
    """The `bench` block (variant -> summary) of its JSON object (see Record.from_json)."""
    return {variant: from_json_value(BenchSummary, entry, strict) for variant, entry in doc.items()}


# --- gates, ONNX, pruning and quantization -------------------------------------------


@dataclass(frozen=True)
class GateCheck(Record):
    """One gate: `pipeline.release.gates.Check` as written to report.json."""

    name: str
    against: str
    measured: Any  # a number, a {file: ok} map or None: whatever the gate measures
    limit: Any
    passed: bool
    detail: str


@dataclass(frozen=True)
class Gates(Record):
    passed: bool
    checks: list[GateCheck]
    baseline: str | None

    def failed(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]


@dataclass(frozen=True)
class OnnxInfo(Record):
    parity: dict[str, Any]  # per .onnx file, as converters.onnx_export reports it


class PruningInfo(View):
    """`pruning`: magnitude, per-layer or structured; keys depend on the method."""

    @property
    def threshold(self) -> float | None:
        return typing.cast("float | None", self.doc.get("threshold"))

    @property
    def target_sparsity(self) -> float | None:
        return typing.cast("float | None", self.doc.get("target_sparsity"))

    @property
    def achieved_sparsity(self) -> float | None:
        return typing.cast("float | None", self.doc.get("achieved_sparsity"))

    @property
    def layers(self) -> list[dict[str, Any]]:
        return typing.cast("list[dict[str, Any]]", self.doc.get("layers", []))

    @property
    def sparsity_mode(self) -> str | None:
        return typing.cast("str | None", self.doc.get("sparsity_mode"))

    @property
    def note(self) -> str | None:
        return typing.cast("str | None", self.doc.get("note"))

    @property
    def auto(self) -> dict[str, Any]:
        """The auto-sparsity search (`curve`, `chosen_sparsity`, `reason`); {} without."""
        return typing.cast("dict[str, Any]", self.doc.get("auto") or {})

    @property
    def structured(self) -> dict[str, Any] | None:
        return typing.cast("dict[str, Any] | None", self.doc.get("structured"))

    @property
    def structured_auto(self) -> dict[str, Any]:
        """The `--structured-sparsity auto` search (`curve`, `chosen_sparsity` (None: none
        in budget), `reason`); {} without."""
        return typing.cast("dict[str, Any]", (self.structured or {}).get("auto") or {})

    @property
    def flatten(self) -> dict[str, Any] | None:
        return typing.cast("dict[str, Any] | None", self.doc.get("flatten"))


class QuantizationInfo(View):
    """`quantization`: the int8 model's tensors, recipe, diagnosis and runtime checks."""

    @property
    def full_integer(self) -> bool | None:
        return typing.cast("bool | None", self.doc.get("full_integer"))

    def tensor(self, side: str) -> dict[str, Any]:
        """`input` or `output`: dtype, shape, scale, zero_point (and output's postprocess)."""
        return typing.cast("dict[str, Any]", self.doc[side])

    @property
    def postprocess(self) -> str:
        return typing.cast(str, self.tensor("output").get("postprocess", "none"))

    @property
    def calibration_samples(self) -> int | None:
        return typing.cast("int | None", self.doc.get("calibration_samples"))

    @property
    def recipe(self) -> str:
        return typing.cast(str, self.doc.get("recipe", "-"))

    @property
    def activations(self) -> str | None:
        return typing.cast("str | None", self.doc.get("activations"))

    @property
    def diagnosis(self) -> dict[str, Any] | None:
        return typing.cast("dict[str, Any] | None", self.doc.get("diagnosis"))

    @property
    def tried(self) -> list[dict[str, Any]]:
        return typing.cast("list[dict[str, Any]]", self.doc.get("tried", []))

    @property
    def verification(self) -> list[dict[str, Any]]:
        """Per runtime target: `target`, `status`, `reason`, agreement with the reference."""
        return typing.cast("list[dict[str, Any]]", self.doc.get("verification", []))

    @property
    def micro(self) -> dict[str, Any] | None:
        """TFLM's account of the int8 file (`[micro]` installed): `arena_bytes`,
        `arena_estimate_bytes`, `flash_bytes`, `ops`, `missing_ops`, `float_ops`."""
        return typing.cast("dict[str, Any] | None", self.doc.get("micro"))


# --- what to ship ----------------------------------------------------------------------


@dataclass(frozen=True)
class Recommendation(Record):
    """`recommendation.<target>` (pipeline/release/recommendation.py): what to ship there."""

    ship: str | None  # a variant, or None when no measured variant is eligible
    reason: str
    p50_ms: dict[str, float]  # per variant measured on this target
    eligible: list[str]  # non-inferior to float32 (and within max_int8_bytes), fastest first
    margins: dict[str, float]  # non-inferiority margin per metric
    max_bytes: int | None = None  # the gates' max_int8_bytes, when set


# --- the report -------------------------------------------------------------------------


@dataclass
class BuildReport(Record):
    """report.json of a build."""

    schema_version: int
    model: ModelInfo
    data: DataSummary
    operating_point: OperatingPointInfo
    pruning: PruningInfo
    quantization: QuantizationInfo
    artifacts: dict[str, Artifact]  # per variant, then the .onnx files
    metrics: dict[str, VariantMetrics]  # per variant, float32 first, then the ONNX files
    bench: dict[str, BenchSummary]  # per variant; {} with --no-bench
    warnings: list[str]
    # per stage and `total`: the build's clock itself, so the `report` stage that runs
    # after report.json is written still lands in the returned report (`--json`)
    timings_s: dict[str, float]
    onnx: OnnxInfo | None = omit()  # only when ONNX files were exported
    gates: Gates | None = omit()
    provenance: Provenance | None = omit()
    # per measured target (`local`, `runtime_python`, `device:NAME`); absent with --no-bench
    recommendation: dict[str, Recommendation] | None = omit()
    subgroups: dict[str, dict[str, SubgroupInfo]] | None = omit()  # test split, --subgroup

    @classmethod
    def coerce(cls, report: BuildReport | Mapping[str, Any]) -> BuildReport:
        """A typed report, from itself or from a report.json dict (read leniently: tests and
        tools hand in partial reports)."""
        return report if isinstance(report, BuildReport) else cls.from_json(report, strict=False)

    def first_metrics(self) -> VariantMetrics | None:
        return next(iter(self.metrics.values()), None)
