"""A sweep's point logic, without I/O: the grid, each point's job and cache key, its int8
numbers, the Pareto front and the recommendation.

`pipeline.release.sweep` runs a sweep; `pipeline.release.sweep_executor` (local processes)
and `pipeline.release.cluster` (Ray) run its points.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config import PruneConfig, QuantizeConfig
from pipeline.errors import ConfigError
from pipeline.release.report.schema import VariantMetrics, read_bench

# Sections of a point's job that do not change its measured result
_UNKEYED_SECTIONS = ("export", "gates")
# How a point is made, in its key: raised when the same job would now give another result,
# so an older sweep's stored points are not reused. 2: points make their variants as the
# build does (operating point and rate budgets in --sparsity auto and the int8 recipes).
POINT_RULES = 2


@dataclass(frozen=True)
class Grid:
    """Values per axis; an axis left out keeps the base job's single value."""

    sparsity: tuple[float | str, ...] = ()
    threshold: tuple[float, ...] = ()
    schedule: tuple[str, ...] = ()
    calibration_samples: tuple[int, ...] = ()
    activations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sparsity and self.threshold:
            raise ConfigError(
                "A sweep varies either the sparsity or the threshold tau; received both "
                f"(sparsity {list(self.sparsity)}, threshold {list(self.threshold)}). "
                "Keep one of them."
            )

    def points(self, base: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every combination, as the job keys it sets ([prune] and [quantize])."""
        prune, quantize = base.get("prune", {}), base.get("quantize", {})
        if self.threshold:
            amount: list[tuple[str, Any]] = [("threshold", t) for t in self.threshold]
        elif self.sparsity:
            amount = [("sparsity", s) for s in self.sparsity]
        elif "threshold" in prune:
            amount = [("threshold", prune["threshold"])]
        else:
            amount = [("sparsity", prune.get("sparsity", "auto"))]
        axes = (
            amount,
            self.schedule or [prune.get("schedule", PruneConfig.schedule.value)],
            self.calibration_samples
            or [quantize.get("calibration_samples", QuantizeConfig.calibration_samples)],
            self.activations or [quantize.get("activations", QuantizeConfig.activations)],
        )
        return [
            {a[0]: a[1], "schedule": s, "calibration_samples": c, "activations": w}
            for a, s, c, w in itertools.product(*axes)
        ]


def point_job(
    base: Mapping[str, Mapping[str, Any]], point: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The base job with a point's settings; the remedy ladder is off so that the point
    measures exactly what it names."""
    job = {section: dict(table) for section, table in base.items()}
    prune = job.setdefault("prune", {})
    quantize = job.setdefault("quantize", {})
    prune.pop("sparsity", None)
    prune.pop("threshold", None)
    for name in ("sparsity", "threshold"):
        if name in point:
            prune[name] = point[name]
    prune["schedule"] = point["schedule"]
    quantize["calibration_samples"] = point["calibration_samples"]
    quantize["activations"] = point["activations"]
    quantize["remedy"] = False
    return job


def point_key(job: Mapping[str, Mapping[str, Any]], versions: Mapping[str, str]) -> str:
    """Hash of what shapes a point's result: its job (not output or gates), the library
    versions and how a point is made (`POINT_RULES`)."""
    keyed = {s: t for s, t in job.items() if s not in _UNKEYED_SECTIONS}
    doc = {"job": keyed, "versions": dict(versions), "rules": POINT_RULES}
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def label(params: Mapping[str, Any]) -> str:
    """A point's settings in a few words: `sparsity=0.5 oneshot cal=200 int8`."""
    amount = "threshold" if "threshold" in params else "sparsity"
    return (
        f"{amount}={params[amount]} {params['schedule']} "
        f"cal={params['calibration_samples']} {params['activations']}"
    )


def int8_metrics(doc: Mapping[str, Any]) -> VariantMetrics:
    """A point's int8 metrics (validation split), typed."""
    return VariantMetrics.from_json(doc["metrics"]["int8"], strict=False)


def int8_p50(doc: Mapping[str, Any]) -> float | None:
    """A point's int8 p50 latency (ms); None without a bench that measured it."""
    entry = (doc.get("bench") or {}).get("int8")
    b = read_bench({"int8": entry}, strict=False)["int8"] if entry else None
    return b.latency_ms.get("p50") if b is not None and b.ok else None


def int8_value(doc: Mapping[str, Any], what: str) -> Any:
    """A point's int8 `bytes`, `p50` or validation metric `what` (None where unmeasured)."""
    if what == "bytes":
        return doc["artifacts"]["int8"]["bytes"]
    if what == "p50":
        return int8_p50(doc)
    return int8_metrics(doc).value(what)


def pareto(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys of the points no other point beats on int8 size, p50 (when measured) and AUROC."""

    def objectives(doc: Mapping[str, Any]) -> tuple[float, ...] | None:
        auroc = int8_value(doc, "auroc")
        if auroc is None:
            return None
        p50 = int8_value(doc, "p50")
        return (float(int8_value(doc, "bytes")), p50 if p50 is not None else 0.0, -auroc)

    scored: list[tuple[str, tuple[float, ...]]] = []
    for doc in points:
        values = objectives(doc)
        if values is not None:
            scored.append((doc["key"], values))
    front = []
    for key, mine in scored:
        dominated = any(
            all(a <= b for a, b in zip(other, mine, strict=True)) and other != mine
            for k, other in scored
            if k != key
        )
        if not dominated:
            front.append(key)
    return front


def recommend(points: Sequence[Mapping[str, Any]], prefer: str) -> Mapping[str, Any] | None:
    """The smallest (or fastest) point that passes every gate; ties go to higher AUROC."""
    passing = [d for d in points if d["gates"]["passed"] and int8_value(d, "auroc") is not None]
    if prefer == "latency":
        passing = [d for d in passing if int8_value(d, "p50") is not None]

        def order(d: Mapping[str, Any]) -> tuple[float, ...]:
            return (int8_value(d, "p50"), int8_value(d, "bytes"), -int8_value(d, "auroc"))
    else:

        def order(d: Mapping[str, Any]) -> tuple[float, ...]:
            p50 = int8_value(d, "p50")
            return (
                int8_value(d, "bytes"),
                -int8_value(d, "auroc"),
                p50 if p50 is not None else 0.0,
            )

    return min(passing, key=order) if passing else None
