"""The int8 stage's typed results: each recipe tried, the chosen one with its evidence, and
what the verify stage adds; written as the report's `quantization` block only by
`QuantizationResult.to_json`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.config import QuantizeConfig
from pipeline.config.budget import RATES, budget_json
from pipeline.models import OutputKind

if TYPE_CHECKING:
    from converters.inspection import ModelInfo
    from pipeline.evaluate.decision import DecisionRule
    from pipeline.evaluate.operating_point import RateBudget
    from pipeline.quantize.verification import RuntimeCheck


@dataclass(frozen=True)
class Candidate:
    """One quantization recipe."""

    name: str
    logits: bool = False
    calibration_samples: int = QuantizeConfig.calibration_samples
    activations: str = "int8"


@dataclass(frozen=True)
class TriedRecipe:
    """A recipe of the ladder with its validation numbers against the budget."""

    name: str
    postprocess: str  # what the host applies to the output: sigmoid | softmax | none
    calibration_samples: int
    activations: str
    val_auroc: float | None
    val_auroc_drop: float | None  # below the pruned float model's
    # validation sensitivity, specificity and Brier score at the operating point, and how
    # much worse than the reference each is; None when rates were not judged
    val_rates: Mapping[str, float | None] | None
    val_rate_drops: Mapping[str, float | None] | None
    meets_budget: bool
    bytes: int
    # the worst judged --subgroup on validation (`evaluate.subgroups.GroupBudget.worst_group`)
    val_groups: Mapping[str, Any] | None = None
    # the one-sided upper confidence bound of each loss (`--decide`); None: not bounded
    val_loss_bound: Mapping[str, float | None] | None = None
    decision: str | None = None  # shipped | passed over
    reason: str | None = None  # why: the budgets it missed, by value or bound

    def rate(self, name: str) -> float | None:
        """A validation rate (`sensitivity`, `specificity`, `brier`); None when not judged."""
        return None if self.val_rates is None else self.val_rates.get(name)

    def to_json(self) -> dict[str, Any]:
        """An entry of the report's `quantization.tried`."""
        out: dict[str, Any] = {
            "name": self.name,
            "postprocess": self.postprocess,
            "calibration_samples": self.calibration_samples,
            "activations": self.activations,
            "val_auroc": self.val_auroc,
            "val_auroc_drop": self.val_auroc_drop,
        }
        if self.val_rates is not None and self.val_rate_drops is not None:
            for name in RATES:
                out[f"val_{name}"] = self.val_rates.get(name)
                worse = "increase" if name == "brier" else "drop"
                out[f"val_{name}_{worse}"] = self.val_rate_drops[name]
            out.update({f"val_{k}": v for k, v in (self.val_groups or {}).items()})
        if self.val_loss_bound is not None:
            out["val_loss_bound"] = dict(self.val_loss_bound)
        if self.decision is not None:
            out["decision"], out["reason"] = self.decision, self.reason
        return {**out, "meets_budget": self.meets_budget, "bytes": self.bytes}


@dataclass(frozen=True)
class SparseEncoding:
    """The verify stage's verdict on `--sparse-encoding`."""

    requested: bool
    kept: bool
    reason: str | None  # why it was dropped: the runtimes that failed it

    def to_json(self) -> dict[str, Any]:
        return {"requested": self.requested, "kept": self.kept, "reason": self.reason}


@dataclass(frozen=True)
class QuantizationResult:
    """The chosen int8 flatbuffer, how to read its output, and the evidence."""

    tflite: bytes = field(repr=False)
    postprocess: str  # applied by the host to the model output: sigmoid | softmax | none
    output_kind: OutputKind  # how evaluation turns outputs into probabilities
    recipe: Candidate  # the chosen one
    inspection: ModelInfo = field(repr=False)  # of the chosen file
    config: QuantizeConfig
    calibration_samples: int
    calibration_label_counts: Any  # as `Splits.calibration_label_counts` gives them
    reference_val_auroc: float | None  # the pruned float model's, the budget's base
    rates: RateBudget | None  # the validation rate budget; None: AUROC alone
    tried: tuple[TriedRecipe, ...]
    diagnosis: dict[str, Any] | None  # why plain PTQ missed the budget (output, layers)
    sparse_encoding: SparseEncoding | None = None  # set by the verify stage
    micro: dict[str, Any] | None = None  # TFLM's account of the file ([micro] installed)
    verification: tuple[RuntimeCheck, ...] | None = None  # set by the verify stage
    rule: DecisionRule | None = None  # how the recipes were judged; None: point estimates
    min_detectable: Mapping[str, float | None] | None = None  # of the validation split

    def _decided(self) -> dict[str, Any]:
        """`decide`, `decision_confidence` and `min_detectable` ({} without bounds)."""
        if self.rule is None:
            return {}
        return {
            "decide": self.rule.decide.value,
            "decision_confidence": self.rule.confidence,
            "min_detectable": dict(self.min_detectable or {}),
        }

    @property
    def budget_met(self) -> bool:
        return any(t.meets_budget for t in self.tried)

    @property
    def chosen(self) -> TriedRecipe:
        """The chosen recipe's entry of `tried`."""
        return next(t for t in self.tried if t.name == self.recipe.name)

    def to_json(self) -> dict[str, Any]:
        """The report's `quantization` block."""
        info, rates = self.inspection, self.rates
        doc = info.to_json()
        sparse = self.sparse_encoding
        out = {
            "full_integer": info.full_integer,
            "integer_ops": info.integer_ops,
            "input": doc["input"],
            "output": {**doc["output"], "postprocess": self.postprocess},
            "io": self.config.io,
            "activations": self.recipe.activations,
            "sparse_encoding": sparse.to_json() if sparse else self.config.sparse_encoding,
            "calibration_samples": self.calibration_samples,
            "calibration_label_counts": self.calibration_label_counts,
            "recipe": self.recipe.name,
            "budget_met": self.budget_met,
            **budget_json(
                ("max_auroc_drop", self.config.max_auroc_drop),
                self.reference_val_auroc,
                rates.budget if rates else None,
                rates.reference if rates else None,
                prefix="reference",
            ),
            "tried": [t.to_json() for t in self.tried],
            **self._decided(),
            "diagnosis": self.diagnosis,
            "op_summary": doc["op_summary"],
            "op_versions": {op: v["versions"] for op, v in doc["op_summary"].items()},
        }
        if self.micro is not None:
            out["micro"] = self.micro
        if self.verification is not None:
            out["verification"] = [c.to_json() for c in self.verification]
        return out
