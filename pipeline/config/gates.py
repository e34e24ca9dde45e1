"""Release gates, described once: `GATES` is the table the job file's `[gates]` keys, the
`--gate KEY=VALUE` flag, `GatesConfig`'s validation and `pipeline.release.gates`'s checks
are all read from.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

FLOAT32 = "float32"
LIMIT = "limit"
BASELINE = "baseline"


class GateRange(str, enum.Enum):
    """The values a gate's limit may take (beyond being a finite number)."""

    FRACTION = "fraction"  # a difference of rates in [-1, 1]
    POSITIVE = "positive"  # > 0
    ANY = "any"  # any finite number (percentages)


class Measure(str, enum.Enum):
    """What a gate measures on the report; `pipeline.release.gates` implements each."""

    DROP = "drop"  # float32 (or baseline int8) metric - int8 metric
    INT8_METRIC = "int8_metric"  # the int8 model's metric
    NONINFERIORITY = "noninferiority"  # upper 95% bound of float32 - int8 (paired bootstrap)
    INT8_BYTES = "int8_bytes"  # size of model_int8.tflite
    INT8_P50 = "int8_p50"  # int8 median latency
    SPEEDUP = "speedup"  # float32 p50 / int8 p50
    P50_GROWTH_PCT = "p50_growth_pct"  # int8 p50 vs the baseline's, in %
    BYTES_GROWTH_PCT = "bytes_growth_pct"  # int8 bytes vs the baseline's, in %
    ARENA_KB = "arena_kb"  # TFLM's smallest working tensor arena of the int8 model, KiB
    FLASH_KB = "flash_kb"  # model_int8.tflite as shipped, held in a microcontroller's flash, KiB
    # the worst judged test subgroup's upper 95% bound of float32 - int8 (paired bootstrap)
    SUBGROUP_NONINFERIORITY = "subgroup_noninferiority"


@dataclass(frozen=True)
class GateSpec:
    """One limit gate of `[gates]` (and `--gate NAME=VALUE`), judged on the int8 model.

    Attributes:
        name: the job key, the `--gate` key and the check's name in report.json.
        help: what is compared, for the job file template and the README.
        example: a typical limit, as TOML.
        measure: what is measured (see `Measure`); `metric` names the metric it reads.
        against: what the int8 model is compared with: float32, a fixed limit, and/or the
            baseline (the previous release; checked only when one is given).
        upper: the measured value must stay <= the limit (else >=).
        whole: the limit is a whole number (bytes).
        range: the limits allowed.
        rank: position of the float32/limit check among report.json's checks (fixed by
            earlier releases; baseline checks follow in table order).
    """

    name: str
    help: str
    example: str
    measure: Measure
    against: tuple[str, ...]
    range: GateRange
    rank: int
    metric: str = ""
    upper: bool = True
    whole: bool = False

    @property
    def needs_baseline(self) -> bool:
        return self.against == (BASELINE,)


GATES: tuple[GateSpec, ...] = (
    GateSpec(
        "max_auroc_drop",
        "float32 AUROC - int8 AUROC (and baseline int8 - int8)",
        "0.02",
        Measure.DROP,
        (FLOAT32, BASELINE),
        GateRange.FRACTION,
        0,
        metric="auroc",
    ),
    GateSpec(
        "max_sensitivity_drop",
        "the same for sensitivity",
        "0.03",
        Measure.DROP,
        (FLOAT32, BASELINE),
        GateRange.FRACTION,
        1,
        metric="sensitivity",
    ),
    GateSpec(
        "min_specificity",
        "int8 specificity at the decision threshold",
        "0.9",
        Measure.INT8_METRIC,
        (LIMIT,),
        GateRange.FRACTION,
        2,
        metric="specificity",
        upper=False,
    ),
    GateSpec(
        "max_int8_bytes",
        "size of model_int8.tflite",
        "65536",
        Measure.INT8_BYTES,
        (LIMIT,),
        GateRange.POSITIVE,
        5,
        whole=True,
    ),
    GateSpec(
        "max_int8_p50_ms",
        "int8 median latency (needs the bench)",
        "2.0",
        Measure.INT8_P50,
        (LIMIT,),
        GateRange.POSITIVE,
        6,
    ),
    GateSpec(
        "min_speedup",
        "float32 p50 / int8 p50 (needs the bench)",
        "1.0",
        Measure.SPEEDUP,
        (FLOAT32,),
        GateRange.POSITIVE,
        7,
        upper=False,
    ),
    GateSpec(
        "max_latency_regression_pct",
        "int8 p50 above the baseline's, in %",
        "20.0",
        Measure.P50_GROWTH_PCT,
        (BASELINE,),
        GateRange.ANY,
        8,
    ),
    GateSpec(
        "max_size_growth_pct",
        "int8 bytes above the baseline's, in %",
        "10.0",
        Measure.BYTES_GROWTH_PCT,
        (BASELINE,),
        GateRange.ANY,
        9,
    ),
    GateSpec(
        "noninferiority_auroc",
        "margin: upper 95% bound of float32 - int8 AUROC",
        "0.02",
        Measure.NONINFERIORITY,
        (FLOAT32,),
        GateRange.FRACTION,
        3,
        metric="auroc",
    ),
    GateSpec(
        "noninferiority_sensitivity",
        "the same for sensitivity",
        "0.05",
        Measure.NONINFERIORITY,
        (FLOAT32,),
        GateRange.FRACTION,
        4,
        metric="sensitivity",
    ),
    GateSpec(
        "max_arena_kb",
        "TFLM tensor arena of the int8 model in KiB (needs the [micro] extra)",
        "256",
        Measure.ARENA_KB,
        (LIMIT,),
        GateRange.POSITIVE,
        10,
    ),
    GateSpec(
        "max_flash_kb",
        "model_int8.tflite in KiB: the flash its const array takes on a microcontroller",
        "512",
        Measure.FLASH_KB,
        (LIMIT,),
        GateRange.POSITIVE,
        11,
    ),
    GateSpec(
        "subgroup_noninferiority_auroc",
        "margin: upper 95% bound of float32 - int8 AUROC in every judged test subgroup "
        "(--subgroup)",
        "0.05",
        Measure.SUBGROUP_NONINFERIORITY,
        (FLOAT32,),
        GateRange.FRACTION,
        12,
        metric="auroc",
    ),
    GateSpec(
        "subgroup_noninferiority_sensitivity",
        "the same for sensitivity",
        "0.1",
        Measure.SUBGROUP_NONINFERIORITY,
        (FLOAT32,),
        GateRange.FRACTION,
        13,
        metric="sensitivity",
    ),
)
GATE_LIMITS = tuple(g.name for g in GATES)
BASELINE_GATES = tuple(g.name for g in GATES if g.needs_baseline)
# gates that read a baseline when one is given: those that need it, then the others
_USES_BASELINE = BASELINE_GATES + tuple(
    g.name for g in GATES if BASELINE in g.against and not g.needs_baseline
)


def _check_limit(spec: GateSpec, value: Any, rule: str) -> None:
    """One of GatesConfig's checks of a set limit: finite, fraction, positive, whole."""
    name = spec.name
    if rule == "finite" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise ConfigError(f"Gate {name} must be a finite number; received {value!r}.")
    if rule == "fraction" and spec.range is GateRange.FRACTION and not -1.0 <= value <= 1.0:
        raise ConfigError(
            f"Gate {name} is a fraction in [-1, 1] (0.02 = two points); received {value}."
        )
    if rule == "positive" and spec.range is GateRange.POSITIVE and not value > 0:
        raise ConfigError(f"Gate {name} must be > 0; received {value}.")
    if rule == "whole" and spec.whole and not isinstance(value, int):
        raise ConfigError(f"Gate {name} must be a whole number of bytes; received {value!r}.")


@dataclass(frozen=True)
class GatesConfig:
    """Release gates: limits the int8 model must meet, else the build exits 1.

    Drops compare int8 with float32 on the test split and, with a `baseline` (the previous
    release's report.json), with that release's int8 model too. Unset limits are not
    checked. One field per entry of `GATES`, which says what each compares.
    """

    max_auroc_drop: float | None = None
    max_sensitivity_drop: float | None = None
    min_specificity: float | None = None
    max_int8_bytes: int | None = None
    max_int8_p50_ms: float | None = None
    min_speedup: float | None = None
    max_latency_regression_pct: float | None = None
    max_size_growth_pct: float | None = None
    noninferiority_auroc: float | None = None
    noninferiority_sensitivity: float | None = None
    max_arena_kb: float | None = None
    max_flash_kb: float | None = None
    subgroup_noninferiority_auroc: float | None = None
    subgroup_noninferiority_sensitivity: float | None = None
    baseline: Path | None = None  # the previous release's report.json

    def __post_init__(self) -> None:
        for rule in ("finite", "fraction", "positive", "whole"):  # every gate, rule by rule
            for spec in GATES:
                value = getattr(self, spec.name)
                if value is not None:
                    _check_limit(spec, value, rule)
        needs_baseline = [n for n in BASELINE_GATES if getattr(self, n) is not None]
        if needs_baseline and self.baseline is None:
            raise ConfigError(
                f"Gate {needs_baseline[0]} compares with the previous release; received no "
                "baseline. Pass --baseline PATH/report.json or set [gates] baseline."
            )
        if self.baseline is not None:
            if not self.baseline.is_file():
                raise ConfigError(
                    f"Baseline '{self.baseline}' is not a file; expected the report.json of "
                    "the previous release (e.g. downloaded from its CI run)."
                )
            if all(getattr(self, n) is None for n in _USES_BASELINE):
                raise ConfigError(
                    f"Baseline '{self.baseline}' was given but no gate uses it. Set at least "
                    f"one of {', '.join(_USES_BASELINE)} in [gates] (or --gate KEY=VALUE)."
                )

    @property
    def limits(self) -> dict[str, float]:
        """The limits that are set, by gate name."""
        return {n: getattr(self, n) for n in GATE_LIMITS if getattr(self, n) is not None}
