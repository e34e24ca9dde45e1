"""Validation verdicts that hold beyond the noise of a small split (`--decide`).

`--sparsity auto`, `--structured-sparsity auto` and the int8 remedy ladder each call a
candidate within its budgets against a reference model (the original, the pruned float
model). Each loss is `reference - candidate` on the validation split (AUROC, and at a binary
operating point sensitivity and specificity) or `candidate - reference` (Brier score).

`--decide interval` (the default) uses the one-sided upper confidence bound of each loss at
`--decision-confidence`, from a paired, stratified bootstrap of the validation split: one
set of resampled case counts (`bootstrap.resample_counts`, seeded from `--seed`) scores the
reference and every candidate, so the case mix cancels in each difference. The Brier score
is bounded the same way: a variant whose probabilities may have drifted by more than the
budget is not shipped on a lucky draw either. `--decide point` keeps the point estimates
(the rule before bounds).

`min_detectable` is the smallest loss the split can tell from none at that confidence: the
largest margin any judged candidate's bound added to its point loss (the bootstrap spread of
the paired difference), and never less than one case of the class the rate counts. It
shrinks as 1/sqrt(cases), hence the cases a budget below it would take.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.config.enums import Decide
from pipeline.evaluate.bootstrap import replicate_metrics, resample_counts

if TYPE_CHECKING:
    from pipeline.config.budget import ValidationBudget
    from pipeline.config.types import BuildConfig

DECISION_REPLICATES = 400  # per build: the one-sided 95% quantile is stable to ~0.003 AUROC
LOSSES = ("auroc", "sensitivity", "specificity", "brier")
DETECTABLE = ("auroc", "sensitivity")
SLACK = 1e-12  # "no loss at all" passes a zero budget despite float noise
FLAGS = {
    "auroc": "AUROC",
    "sensitivity": "--val-max-sensitivity-drop",
    "specificity": "--val-max-specificity-drop",
    "brier": "--val-max-brier-increase",
}


@dataclass(frozen=True)
class DecisionRule:
    """How verdicts are made: `--decide`, `--decision-confidence`, and the bootstrap seed."""

    decide: Decide = Decide.INTERVAL
    confidence: float = 0.95
    seed: int = 0
    replicates: int = DECISION_REPLICATES

    @classmethod
    def of(cls, config: BuildConfig) -> DecisionRule:
        ev = config.evaluation
        return cls(Decide(ev.decide), ev.decision_confidence, config.seed)


def _figures(
    probs: np.ndarray, y: np.ndarray, positive: int, threshold: float | None, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """AUROC (and at a binary operating point sensitivity, specificity, Brier score) of each
    row of case counts."""
    probs = np.asarray(probs, np.float64)
    if threshold is None or probs.shape[1] != 2:
        pred = np.argmax(probs, axis=1)
        out = replicate_metrics(probs, y, pred, counts, positive)
        return {"auroc": out["auroc"]} if "auroc" in out else {}
    p, truth = probs[:, positive], y == positive
    pred = np.where(p >= threshold, positive, 1 - positive)
    out = replicate_metrics(probs, y, pred, counts, positive)
    figures = {name: out[name] for name in ("auroc", "sensitivity", "specificity")}
    figures["brier"] = counts @ ((p - truth) ** 2) / len(y)
    return figures


def _loss(name: str, reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    return candidate - reference if name == "brier" else reference - candidate


def _number(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


@dataclass(frozen=True)
class Decision:
    """A candidate's validation figures, losses and their bounds against the budgets."""

    values: Mapping[str, float | None]  # the candidate's point figures
    loss: Mapping[str, float | None]  # point loss against the reference
    bound: Mapping[str, float | None]  # one-sided upper confidence bound of each loss
    limits: Mapping[str, float]  # the budgets judged
    decide: Decide
    missed: Mapping[str, str]  # budget missed -> text naming it, its value or bound, limit
    replicates: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    # the worst judged --subgroup (`evaluate.subgroups.GroupBudget.worst_group`); {} without
    groups: Mapping[str, Any] = field(default_factory=dict)

    @property
    def within_budget(self) -> bool:
        return not self.missed

    def rates(self) -> dict[str, Any]:
        """The point sensitivity, specificity and Brier score ({} when not judged), and the
        worst judged subgroup's figures with --subgroup."""
        return {**{k: v for k, v in self.values.items() if k != "auroc"}, **self.groups}

    def to_json(self) -> dict[str, Any]:
        """`val_loss_bound` of a curve point or a tried recipe."""
        return {"val_loss_bound": {name: self.bound.get(name) for name in LOSSES}}


@dataclass(frozen=True)
class PairedJudge:
    """Judges candidates' validation probabilities against one reference's, every one on
    the same resampled case counts."""

    y: np.ndarray = field(repr=False)
    positive: int
    threshold: float | None  # None: no operating point, AUROC alone
    limits: Mapping[str, float]
    rule: DecisionRule
    counts: np.ndarray = field(repr=False)  # (replicates, cases)
    reference: Mapping[str, np.ndarray] = field(repr=False)  # replicate figures
    reference_point: Mapping[str, float | None]
    groups: Any = None  # a `GroupBudget`: every judged --subgroup keeps its budgets too

    @classmethod
    def of_reference(
        cls,
        probs: np.ndarray,
        y: np.ndarray,
        positive: int,
        threshold: float | None,
        auroc_budget: float,
        budget: ValidationBudget | None,
        rule: DecisionRule,
        groups: Any = None,
    ) -> PairedJudge:
        """A judge of the reference model's validation `probs` (N, C); `budget` None or no
        `threshold`: AUROC alone; `groups` (a `GroupBudget` counted from the reference):
        the worst judged subgroup must keep its budgets too (point estimates: a group is
        too small for a useful bound)."""
        y = np.asarray(y)
        counts = np.concatenate(list(resample_counts(y, rule.replicates, rule.seed)))
        limits = {"auroc": auroc_budget}
        if budget is not None and threshold is not None and np.asarray(probs).shape[1] == 2:
            limits.update(budget.rate_limits())
        else:
            threshold = None
        reference = _figures(probs, y, positive, threshold, counts)
        point = _figures(probs, y, positive, threshold, np.ones((1, len(y))))
        ref_point = {k: _number(v[0]) for k, v in point.items()}
        groups = groups if threshold is not None else None
        return cls(y, positive, threshold, limits, rule, counts, reference, ref_point, groups)

    def judge(self, probs: np.ndarray) -> Decision:
        """A candidate's verdict from its validation probabilities (N, C)."""
        mine = _figures(probs, self.y, self.positive, self.threshold, self.counts)
        point = _figures(probs, self.y, self.positive, self.threshold, np.ones((1, len(self.y))))
        values = {k: _number(v[0]) for k, v in point.items()}
        loss: dict[str, float | None] = {}
        bound: dict[str, float | None] = {}
        samples: dict[str, np.ndarray] = {}
        missed = {}
        for name, limit in self.limits.items():
            ref, got = self.reference_point.get(name), values.get(name)
            if ref is None:  # undefined for the reference: not judged
                loss[name] = bound[name] = None
                continue
            loss[name] = None if got is None else (got - ref if name == "brier" else ref - got)
            samples[name] = _loss(name, self.reference[name], mine[name])
            bound[name] = upper_bound(samples[name], self.rule.confidence, loss[name])
            judged = loss[name] if self.rule.decide is Decide.POINT else bound[name]
            if judged is None or judged > limit + SLACK:
                missed[name] = missed_text(name, loss[name], bound[name], limit, self.rule)
        worst = {} if self.groups is None else self.groups.worst_group(probs[:, self.positive])
        if worst and not worst["groups_within_budget"]:
            metric = worst["worst_group_metric"]
            missed["subgroup"] = (
                f"validation subgroup {worst['worst_group']} lost {worst['worst_group_drop']:.4f} "
                f"{metric} (budget {self.groups.budgets[metric]:g} in every judged subgroup)"
            )
        decide = self.rule.decide
        return Decision(values, loss, bound, self.limits, decide, missed, samples, worst)

    def better(self, a: Decision, b: Decision, names: Sequence[str]) -> bool:
        """Whether `a` has a smaller loss than `b` beyond the noise on one of `names` (the
        lower confidence bound of b's loss minus a's above zero) and is not worse beyond it
        on any judged figure."""
        gain = {
            n: np.nanquantile(b.replicates[n] - a.replicates[n], 1 - self.rule.confidence)
            for n in a.replicates
            if n in b.replicates and not np.all(np.isnan(b.replicates[n] - a.replicates[n]))
        }
        worse = {
            n: np.nanquantile(a.replicates[n] - b.replicates[n], 1 - self.rule.confidence)
            for n in gain
        }
        return any(gain.get(n, 0.0) > 0 for n in names) and all(w <= 0 for w in worse.values())

    def min_detectable(self, decisions: Sequence[Decision]) -> dict[str, float | None]:
        """The smallest AUROC and sensitivity loss the split can detect (module doc)."""
        out: dict[str, float | None] = {}
        positives = int(np.sum(self.y == self.positive))
        for name in DETECTABLE:
            if name not in self.limits or self.reference_point.get(name) is None:
                out[name] = None
                continue
            margins = [
                d.bound[name] - d.loss[name]  # type: ignore[operator]
                for d in decisions
                if d.bound.get(name) is not None and d.loss.get(name) is not None
            ]
            floor = 1.0 / positives if name == "sensitivity" and positives else 0.0
            out[name] = max([floor, *margins]) if margins or floor else None
        return out


def upper_bound(loss: np.ndarray, confidence: float, point: float | None) -> float | None:
    """The one-sided upper `confidence` bound of a loss from its paired replicates (never
    below the point loss: a bound says how much worse it may be)."""
    loss = loss[~np.isnan(loss)]
    if point is None or not len(loss):
        return None
    return max(float(np.quantile(loss, confidence)), point)


def missed_text(
    name: str, loss: float | None, bound: float | None, limit: float, rule: DecisionRule
) -> str:
    """`validation sensitivity drop 0.022 (95% upper bound 0.061) over
    --val-max-sensitivity-drop 0.02`: which budget, by how much."""
    worse = "increase" if name == "brier" else "drop"
    label = "Brier score" if name == "brier" else name if name != "auroc" else "AUROC"
    flag = FLAGS[name] if name != "auroc" else "its AUROC budget"
    shown = "undefined" if loss is None else f"{loss:.4f}"
    if rule.decide is Decide.INTERVAL and bound is not None:
        shown += f" ({rule.confidence:.0%} upper bound {bound:.4f})"
    return f"validation {label} {worse} {shown} over {flag} {limit:g}"


def cases_needed(cases: int, detectable: float, budget: float) -> int:
    """Validation cases it would take for `budget` to be detectable (spread ~ 1/sqrt(n))."""
    if budget <= 0:
        return -1
    return int(np.ceil(cases * (detectable / budget) ** 2))


def detectable_warnings(
    block: str,
    detectable: Mapping[str, float | None] | None,
    limits: Mapping[str, float],
    cases: int,
    auroc_flag: str,
) -> list[str]:
    """A warning per budget below what the validation split can detect."""
    out = []
    for name, value in (detectable or {}).items():
        limit = limits.get(name)
        if value is None or limit is None or limit >= value:
            continue
        flag = auroc_flag if name == "auroc" else FLAGS[name]
        need = cases_needed(cases, value, limit)
        more = f"about {need} validation cases" if need > 0 else "an unbounded split"
        out.append(
            f"{block}: {flag} {limit:g} is below the smallest {name} loss the {cases}-case "
            f"validation split can detect ({value:.4f}): a loss of {limit:g} cannot be told "
            "from none there, so variants are refused on noise (--decide interval) or pass on "
            f"luck (--decide point). It would take {more} to detect {limit:g}."
        )
    return out


ValProbs = Callable[[Any], np.ndarray]  # a model -> its validation probabilities (N, C)


@dataclass(frozen=True)
class ModelJudge:
    """A `PairedJudge` of models: their validation probabilities come from `probs`."""

    probs: ValProbs
    paired: PairedJudge
    decisions: list[Decision] = field(default_factory=list, repr=False, compare=False)

    def judge(self, model: Any) -> Decision:
        decision = self.paired.judge(self.probs(model))
        self.decisions.append(decision)
        return decision

    def min_detectable(self) -> dict[str, float | None]:
        return self.paired.min_detectable(self.decisions)
