"""The build report as dataclasses: `BuildReport.to_json()` is report.json (schema_version 1),
`BuildReport.from_json()` reads a stored one back.

Each record lists its fields in report.json's key order. A field marked `_omit()` is left
out of the JSON when it is None (the key is absent, as in report.json today); any other
None is written as `null`. A `_flat()` field's keys sit in its parent's object (the
binary-task rates inside a variant's metrics). `from_json` is strict: a missing key or a key
no record names raises ValueError, so a report never loses a key on its way through.

Blocks that a stage owns and whose keys depend on the method (pruning, quantization,
ONNX parity) are kept as their JSON objects behind typed read-only views.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")
Interval = tuple[float, float]  # a 95% interval [low, high] in report.json


def _omit() -> Any:
    """A field whose key is absent from the JSON when its value is None."""
    return field(default=None, metadata={"omit": True})


def _flat() -> Any:
    """A record field whose keys are written into its parent's object (absent when None)."""
    return field(default=None, metadata={"flat": True})


def _to_json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, View):
        return value.doc
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _hints(cls: Any) -> dict[str, Any]:
    """The resolved field types of a record class (cached: from_json runs per object)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


_HINTS: dict[Any, dict[str, Any]] = {}


def _from_json(tp: Any, value: Any, strict: bool = True) -> Any:
    """`value` (JSON) as type `tp`: records, views, lists, tuples and dicts of them."""
    if value is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _from_json(options[0], value, strict)
        records = [a for a in options if isinstance(a, type) and issubclass(a, Record)]
        if not records:
            return value
        errors = []
        # the first record whose keys match exactly; reading leniently, the first that reads
        for record, exact in [(r, True) for r in records] + [(r, strict) for r in records]:
            try:
                return record.from_json(value, strict=exact)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(dict.fromkeys(errors)))
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_json(value, strict=strict)
    if isinstance(tp, type) and issubclass(tp, View):
        return tp.from_json(value)
    if origin is list:
        return [_from_json(args[0], v, strict) for v in value]
    if origin is tuple:
        return tuple(_from_json(args[0], v, strict) for v in value)
    if origin is dict:
        return {k: _from_json(args[1], v, strict) for k, v in value.items()}
    return value


class Record:
    """A dataclass written as one JSON object, in its fields' order."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("flat"):
                out.update({} if value is None else value.to_json())
            elif value is not None or not f.metadata.get("omit"):
                out[f.name] = _to_json(value)
        return out

    @classmethod
    def keys(cls) -> set[str]:
        """Every key this record can write."""
        names: set[str] = set()
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            flat = _record_type(_hints(cls)[f.name]) if f.metadata.get("flat") else None
            names |= flat.keys() if flat is not None else {f.name}
        return names

    @classmethod
    def from_json(cls: type[R], doc: Mapping[str, Any], strict: bool = True) -> R:
        """The record of a JSON object.

        Args:
            doc: the JSON object.
            strict: demand exactly the record's keys (a build's own blocks). False reads
                what a partial or hand-made report holds: a missing key reads as None and
                a key the record does not name is ignored.

        Raises:
            ValueError: (strict) a key the record requires is missing, or one it does not
                name is present.
        """
        if not isinstance(doc, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object; received {doc!r}.")
        unknown = set(doc) - cls.keys()
        if unknown and strict:
            raise ValueError(
                f"{cls.__name__}: report key(s) {sorted(unknown)} are not part of schema "
                f"version 1; expected only {sorted(cls.keys())}."
            )
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            tp = _hints(cls)[f.name]
            if f.metadata.get("flat"):
                flat = _record_type(tp)
                assert flat is not None, f"{cls.__name__}.{f.name} is not a record"
                present = {k: doc[k] for k in flat.keys() if k in doc}
                kwargs[f.name] = flat.from_json(present, strict) if present else None
            elif f.name in doc:
                kwargs[f.name] = _from_json(tp, doc[f.name], strict)
            elif not strict and f.default_factory is dataclasses.MISSING:
                kwargs[f.name] = None if f.default is dataclasses.MISSING else f.default
            elif strict and not f.metadata.get("omit"):
                raise ValueError(
                    f"{cls.__name__}: report key '{f.name}' is missing; received keys "
                    f"{sorted(doc)}."
                )
        return cls(**kwargs)


def _record_type(tp: Any) -> type[Record] | None:
    for candidate in (tp, *typing.get_args(tp)):
        if isinstance(candidate, type) and issubclass(candidate, Record):
            return candidate
    return None


@dataclass(frozen=True)
class View:
    """A block kept as its JSON object (a stage owns its keys), read through properties."""

    doc: dict[str, Any]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Any:
        return cls(dict(doc))

    def get(self, key: str, default: Any = None) -> Any:
        return self.doc.get(key, default)


# --- model, data, operating point, artifacts -------------------------------------------


@dataclass(frozen=True)
class ModelInfo(Record):
    source: str
    input_shape: list[int | None]
    output_kind: str
    parameters: int
    intended_use: str | None = _omit()  # [model] intended_use (the model card's)


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
    host_front: dict[str, Any] | None = _omit()  # --host-preprocessing: the steps moved


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
    subgroups: dict[str, str] | None = _omit()  # with --subgroup: the case's values


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
    auroc: float | None = _omit()  # binary: AUROC, rates at the operating point
    sensitivity: float | None = _omit()
    specificity: float | None = _omit()
    accuracy: float | None = _omit()  # multi-class: accuracy and per-class recall
    per_class_recall: list[float | None] | None = _omit()
    ci95: dict[str, Interval | None] | None = _omit()
    vs_float32: dict[str, PairedDiff] | None = _omit()
    flips: GroupFlips | None = _omit()


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
    auroc_per_class: list[float | None] | None = _omit()  # multi-class only
    per_class_recall: list[float | None] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    label_counts: list[int] = field(default_factory=list)
    prediction_counts: list[int] = field(default_factory=list)
    binary: BinaryRates | None = _flat()
    agreement: float | None = None  # with float32's decisions; None for float32 itself
    calibration: Calibration | None = _omit()  # absent for the ONNX variants
    flips: Flips | None = _omit()  # binary .tflite variants only
    ci95: dict[str, Interval | None] | None = _omit()  # with the bootstrap only
    vs_float32: dict[str, PairedDiff] | None = _omit()  # variants other than float32
    bootstrap: Bootstrap | None = _omit()
    subgroups: dict[str, dict[str, SubgroupMetrics]] | None = _omit()  # with --subgroup

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
    runtime_python: BenchOk | BenchFailed | None = _omit()  # --runtime-python's run
    # per --device: that device's summary with its description (`device`, `emulated`), or
    # {status, reason, device} when it could not be reached; read by device_bench_lines
    devices: dict[str, dict[str, Any]] | None = _omit()
    # --profile: device_bench's per-op latency (`models[i].profile`)
    profile: dict[str, Any] | None = _omit()

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
    runtime_python: BenchOk | BenchFailed | None = _omit()
    devices: dict[str, dict[str, Any]] | None = _omit()
    latency_ms: ClassVar[dict[str, float]] = {}
    peak_rss_mb: ClassVar[float | None] = None

    @property
    def ok(self) -> bool:
        return False


BenchSummary = BenchOk | BenchFailed


def read_bench(doc: Mapping[str, Any], strict: bool = True) -> dict[str, BenchSummary]:
    """The `bench` block (variant -> summary) of its JSON object (see Record.from_json)."""
    return {variant: _from_json(BenchSummary, entry, strict) for variant, entry in doc.items()}


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
    onnx: OnnxInfo | None = _omit()  # only when ONNX files were exported
    gates: Gates | None = _omit()
    provenance: Provenance | None = _omit()
    # per measured target (`local`, `runtime_python`, `device:NAME`); absent with --no-bench
    recommendation: dict[str, Recommendation] | None = _omit()
    subgroups: dict[str, dict[str, SubgroupInfo]] | None = _omit()  # test split, --subgroup

    @classmethod
    def coerce(cls, report: BuildReport | Mapping[str, Any]) -> BuildReport:
        """A typed report, from itself or from a report.json dict (read leniently: tests and
        tools hand in partial reports)."""
        return report if isinstance(report, BuildReport) else cls.from_json(report, strict=False)

    def first_metrics(self) -> VariantMetrics | None:
        return next(iter(self.metrics.values()), None)
