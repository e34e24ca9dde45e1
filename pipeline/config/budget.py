"""The validation budgets: how much worse than its reference a pruned or int8 model may be
on the validation split before a search (`--sparsity auto`, `--structured-sparsity auto`)
or the int8 remedies reject it.

One `ValidationBudget` is built from the config (`ValidationBudget.of`) and passed whole
to the prune searches, the quantization ladder and the report's warnings; `budget_json`
writes it with the reference model's validation figures into the report, in one place for
the `pruning.auto`, `pruning.structured.auto` and `quantization` blocks.

These are not the release gates (`[gates] max_sensitivity_drop`), which judge the int8
model on the test split against float32; hence their `val_` names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.config.types import BuildConfig

RATES = ("sensitivity", "specificity", "brier")


@dataclass(frozen=True)
class ValidationBudget:
    """The validation budgets at the operating point, shared by the prune searches and the
    int8 remedies (each against its own reference model).

    The AUROC budgets are each one stage's (`PruneConfig.max_prune_drop`,
    `QuantizeConfig.max_auroc_drop`) and travel with that stage's config.

    Attributes:
        max_sensitivity_drop: validation sensitivity a variant may lose.
        max_specificity_drop: the same for validation specificity.
        max_brier_increase: how much the validation Brier score may rise.
    """

    max_sensitivity_drop: float
    max_specificity_drop: float
    max_brier_increase: float

    @classmethod
    def of(cls, config: BuildConfig) -> ValidationBudget:
        """The budgets of a build (each default is its `EvaluationConfig` field's)."""
        ev = config.evaluation
        return cls(
            max_sensitivity_drop=ev.max_sensitivity_drop,
            max_specificity_drop=ev.max_specificity_drop,
            max_brier_increase=ev.max_brier_increase,
        )

    def rate_limits(self) -> dict[str, float]:
        """Validation rate -> its budget (sensitivity, specificity, brier)."""
        return dict(
            zip(
                RATES,
                (self.max_sensitivity_drop, self.max_specificity_drop, self.max_brier_increase),
                strict=True,
            )
        )


def budget_json(
    auroc_budget: tuple[str, float],
    reference_auroc: float | None,
    budget: ValidationBudget | None,
    reference_rates: Mapping[str, float | None] | None,
    prefix: str,
) -> dict[str, Any]:
    """A report block's budgets and the reference model's validation figures.

    Args:
        auroc_budget: the AUROC budget's report key and value (`max_prune_drop` in
            `pruning.*.auto`, `max_auroc_drop` in `quantization`).
        reference_auroc: the reference model's validation AUROC.
        budget: the rate budgets; None when the rates were not judged (no operating point),
            and they are written as null.
        reference_rates: the reference model's validation rates at the operating point.
        prefix: the reference's name in the keys (`baseline` for the pruning searches,
            whose reference is the original model; `reference` for the int8 recipes,
            whose reference is the pruned float model): the report's keys since schema 1.
    """
    limits = budget.rate_limits() if budget is not None else {}
    rates = reference_rates or {}
    key, value = auroc_budget
    return {
        key: value,
        f"{prefix}_val_auroc": reference_auroc,
        "max_sensitivity_drop": limits.get("sensitivity"),
        "max_specificity_drop": limits.get("specificity"),
        "max_brier_increase": limits.get("brier"),
        **{f"{prefix}_val_{name}": rates.get(name) if budget else None for name in RATES},
    }
