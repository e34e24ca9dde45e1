"""The verdict per subgroup (`--subgroup`): every variant's metrics in each site, sex or age
band, with intervals from the whole split's stratified bootstrap restricted to the group.

A group is judged only with at least `--min-subgroup-cases` positives and as many
negatives (multi-class: that many cases of every class); smaller groups are reported with
the reason and no verdict rests on them. A judged group's replicate is the whole split's
replicate (`pipeline.evaluate.bootstrap`, stratified by class) restricted to the group's
cases: no group draws again, every group of every attribute and every variant is scored
on the same draws, so `variant - float32` is paired as for the whole split, and a group of
every case gets exactly the whole split's intervals. The group's size and class counts
vary from replicate to replicate (as from one split to the next); a replicate without a
positive or a negative of the group gives no AUROC (nor sensitivity or specificity) for
it and is left out of that interval, as the whole split leaves out undefined values.

`GroupBudget` is what the decisions (auto sparsity, structured auto, the int8 remedies)
ask: which judged validation group loses most against its budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate import bootstrap
from pipeline.evaluate.group_bootstrap import Numerators, Plan, Tally

BINARY_METRICS = ("auroc", "sensitivity", "specificity")
SubgroupLookup = Any  # Callable[[int], dict[str, str]]: a case's values by attribute


def group_masks(values: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """name -> value -> bool mask of its cases, values sorted as text."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, arr in values.items():
        arr = np.asarray(arr, object).astype(str)
        out[name] = {str(v): arr == v for v in sorted(set(arr.tolist()))}
    return out


def describe_group(
    y: np.ndarray, positive_class: int, num_classes: int, min_cases: int
) -> dict[str, Any]:
    """`subgroups.<NAME>.<VALUE>`: n, positives, negatives, judged and why not."""
    y = np.asarray(y)
    if num_classes == 2:
        pos = int(np.sum(y == positive_class))
        neg = int(len(y) - pos)
        judged = pos >= min_cases and neg >= min_cases
        reason = (
            None
            if judged
            else f"{pos} positives and {neg} negatives; judged from {min_cases} of each "
            "(--min-subgroup-cases)"
        )
        return {"n": int(len(y)), "positives": pos, "negatives": neg, "judged": judged,
                "reason": reason}  # fmt: skip
    counts = np.bincount(y, minlength=num_classes)
    judged = bool(counts.min() >= min_cases)
    reason = None if judged else (
        f"class counts {counts.tolist()}; judged from {min_cases} of every class "
        "(--min-subgroup-cases)"
    )  # fmt: skip
    return {"n": int(len(y)), "positives": None, "negatives": None, "judged": judged,
            "reason": reason}  # fmt: skip


def describe(
    values: Mapping[str, np.ndarray],
    y: np.ndarray,
    positive_class: int,
    num_classes: int,
    min_cases: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """The report's `subgroups` block: each attribute's groups on one split."""
    return {
        name: {
            value: describe_group(y[mask], positive_class, num_classes, min_cases)
            for value, mask in by_value.items()
        }
        for name, by_value in group_masks(values).items()
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _point(values: Mapping[str, np.ndarray], g: int) -> dict[str, Any]:
    """A group's point metrics from `Plan.points`."""
    if "auroc" in values:
        return {m: _finite(values[m][g]) for m in BINARY_METRICS}
    recall = sorted((int(m.split("_")[1]), v) for m, v in values.items() if m != "accuracy")
    return {
        "accuracy": _finite(values["accuracy"][g]),
        "per_class_recall": [_finite(v[g]) for _, v in recall],
    }


def _group_intervals(
    cis: dict[str, dict[str, Any]], points: dict[str, dict[str, Any]], g: int, reference: str
) -> dict[str, dict[str, Any]]:
    """variant -> its `ci95` and `vs_float32` in group `g`."""
    out: dict[str, dict[str, Any]] = {}
    for name, doc in cis.items():
        out[name] = {"ci95": {m: v[g] for m, v in doc["ci95"].items()}}
        if name != reference:
            diffs = {}
            for m, v in doc["paired"].items():
                mine, theirs = _metric(points[name], m), _metric(points[reference], m)
                diffs[m] = {
                    "diff": None if mine is None or theirs is None else mine - theirs,
                    "ci95": v[g],
                }
            out[name]["vs_float32"] = diffs
    return out


def _metric(point: Mapping[str, Any], metric: str) -> float | None:
    """A point value by its bootstrap name (`recall_1` is per_class_recall[1])."""
    if metric.startswith("recall_"):
        recall = point.get("per_class_recall") or []
        index = int(metric.split("_")[1])
        return recall[index] if index < len(recall) else None
    value = point.get(metric)
    return None if value is None else float(value)


def _group_flips(flips: Mapping[str, Any] | None, mask: np.ndarray) -> dict[str, int] | None:
    """The four flip counts of a variant among the group's cases."""
    if flips is None:
        return None
    counts = dict.fromkeys(("positive_missed", "positive_found", "negative_flagged",
                            "negative_cleared"), 0)  # fmt: skip
    for case in flips["cases"]:
        if mask[case["index"]]:
            counts[case["flip"]] += 1
    return counts


@dataclass(frozen=True)
class SplitGroups:
    """Every group of every attribute of one split, laid out to be scored (`Plan`): the
    point metrics at once, the intervals from the whole split's bootstrap replicates
    restricted to each group (`tally`, fed the whole split's case counts)."""

    masks: dict[str, dict[str, np.ndarray]]  # name -> value -> its cases
    judged: dict[str, list[bool]]  # name -> each value's
    variants: tuple[str, ...]  # float32 (the reference) first
    plan: Plan

    @classmethod
    def of(
        cls,
        scored: Mapping[str, tuple[np.ndarray, np.ndarray]],
        y: np.ndarray,
        values: Mapping[str, np.ndarray],
        *,
        positive_class: int,
        min_cases: int,
    ) -> SplitGroups:
        """The groups of `values` (name -> each case's group) on a split of labels `y`,
        scored by `scored` (variant -> (probabilities (N, C), predictions (N,)), float32
        first)."""
        num_classes = next(iter(scored.values()))[0].shape[1]
        y = np.asarray(y)
        masks = group_masks(values)
        judged = {
            n: [describe_group(y[m], positive_class, num_classes, min_cases)["judged"]
                for m in masks[n].values()]
            for n in masks
        }  # fmt: skip
        codes = [(np.argmax(np.stack(list(m.values())), axis=0), len(m)) for m in masks.values()]
        plan = Plan.of(codes, y, list(scored.values()), positive_class)
        return cls(masks, judged, tuple(scored), plan)

    @property
    def blocks(self) -> list[tuple[str, str]]:
        """(attribute, variant) of each block of result columns, as `Plan` lays them."""
        return [(n, v) for n in self.masks for v in self.variants]

    @property
    def judged_columns(self) -> np.ndarray:
        """Whether each result column's group is judged (it alone gets intervals)."""
        return np.concatenate([self.judged[n] for n, _ in self.blocks]).astype(bool)

    def tally(self, replicates: int) -> Tally:
        """Where the whole split's replicates go (`Tally.add`, chunk by chunk): only the
        judged groups are scored on them."""
        return self.plan.keep(self.judged_columns).tally(replicates)

    def report(
        self, metrics: Mapping[str, Mapping[str, Any]], replicates: Numerators | None
    ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """variant -> name -> value -> its metrics in the group (`metrics.<v>.subgroups`).

        Args:
            metrics: variant -> its whole-split metrics (for `flips`).
            replicates: the numerators of the whole split's replicates (`Tally`), or None
                for no intervals.
        """
        plan, reference = self.plan, self.variants[0]
        blocks = self.blocks
        points = {m: v.tolist() for m, v in plan.points().items()}  # floats, read one by one
        every = None
        if replicates is not None:  # intervals only for the judged groups
            reference_of = np.concatenate([
                np.arange(plan.offsets[b], plan.offsets[b + 1]) - plan.offsets[b]
                + plan.offsets[blocks.index((n, reference))]
                for b, (n, _) in enumerate(blocks)
            ])  # fmt: skip
            judged = self.judged_columns
            others = np.repeat([v != reference for _, v in blocks], plan.block_sizes)
            # a column sharing another variant's values shares its intervals too
            copied = judged & plan.shared & others[plan.source]
            every = replicates.intervals(judged & ~copied, judged & others & ~copied, reference_of)
            for part in every:
                for found in part.values():
                    for c in np.flatnonzero(copied).tolist():
                        found[c] = found[plan.source[c]]
        out: dict[str, dict[str, Any]] = {v: {n: {} for n in self.masks} for v in self.variants}
        for name, by_value in self.masks.items():
            index = {v: blocks.index((name, v)) for v in self.variants}
            cis = None
            if every is not None:
                cis = {
                    v: {key: {m: c[plan.offsets[b] : plan.offsets[b + 1]]
                              for m, c in part.items()}
                        for key, part in zip(("ci95", "paired"), every, strict=True)}
                    for v, b in index.items()
                }  # fmt: skip
            for g, (value, mask) in enumerate(by_value.items()):
                n = int(np.count_nonzero(mask))
                group_points = {v: {"n": n, **_point(plan.block(points, b), g)}
                                for v, b in index.items()}  # fmt: skip
                group_cis = (
                    _group_intervals(cis, group_points, g, reference)
                    if self.judged[name][g] and cis
                    else {}
                )
                for v in self.variants:
                    doc = {**group_points[v], **group_cis.get(v, {})}
                    flips = _group_flips(metrics[v].get("flips"), mask) if v != reference else None
                    if flips is not None:
                        doc["flips"] = flips
                    out[v][name][value] = doc
        return out


def variant_subgroups(
    scored: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    values: Mapping[str, np.ndarray],
    metrics: Mapping[str, Mapping[str, Any]],
    *,
    positive_class: int,
    min_cases: int,
    replicates: int,
    seed: int,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """variant -> name -> value -> its metrics in the group (`metrics.<v>.subgroups`), on
    the whole split's replicates drawn here (`bootstrap.resample_counts` with `seed`: the
    evaluate stage instead hands `SplitGroups.tally` the replicates of its own
    `bootstrap.intervals`, the same ones).

    Args:
        scored: variant -> (probabilities (N, C), predictions (N,)), float32 first.
        y: labels of the split.
        values: name -> each case's group (`SubgroupValues.of(split)`).
        metrics: variant -> its whole-split metrics (for `flips`).
        positive_class: the positive class of a binary task.
        min_cases: `--min-subgroup-cases`.
        replicates: bootstrap replicates (0: no intervals).
        seed: the whole split's resampling seed.
    """
    groups = SplitGroups.of(scored, y, values, positive_class=positive_class, min_cases=min_cases)
    numerators = None
    if replicates:
        tally = groups.tally(replicates)
        for counts in bootstrap.resample_counts(y, replicates, seed):
            tally.add(counts)
        numerators = tally.numerators()
    return groups.report(metrics, numerators)


def annotate_flips(metrics: Mapping[str, Mapping[str, Any]], values: SubgroupLookup) -> None:
    """Each changed case of `flips.cases` gets its subgroup values (in place)."""
    for doc in metrics.values():
        for case in (doc.get("flips") or {}).get("cases", []):
            case["subgroups"] = values(case["index"])


@dataclass(frozen=True)
class GroupBudget:
    """What a decision must keep in every judged validation group: AUROC within
    `max_auroc_drop`, sensitivity and specificity within theirs, of the reference model's
    values in the same group, at the operating point."""

    masks: dict[str, np.ndarray]  # "site=B" -> its validation cases (judged groups only)
    truth: np.ndarray  # validation cases that are positive
    threshold: float
    reference: dict[str, dict[str, float | None]]  # group -> metric -> reference value
    budgets: dict[str, float]  # metric -> the drop it may take

    @classmethod
    def of(
        cls,
        values: Mapping[str, np.ndarray],
        truth: np.ndarray,
        reference_score: np.ndarray,
        threshold: float,
        min_cases: int,
        budgets: Mapping[str, float],
    ) -> GroupBudget | None:
        """The budget of the judged groups, counted from `reference_score` (the positive
        class's probability); None when no group is judged."""
        truth = np.asarray(truth, bool)
        masks = {
            f"{name}={value}": mask
            for name, by_value in group_masks(values).items()
            for value, mask in by_value.items()
            if describe_group(truth[mask].astype(int), 1, 2, min_cases)["judged"]
        }
        if not masks:
            return None
        empty: dict[str, dict[str, float | None]] = {}
        budget = cls(masks, truth, float(threshold), empty, dict(budgets))
        reference = {g: budget.group_values(reference_score, m) for g, m in masks.items()}
        return cls(masks, truth, float(threshold), reference, dict(budgets))

    def group_values(self, score: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
        """AUROC, sensitivity and specificity of one group at the threshold."""
        truth, score = self.truth[mask], np.asarray(score, np.float64)[mask]
        flagged = score >= self.threshold
        auroc = bootstrap.weighted_auroc(truth, score, np.ones((1, len(truth))))[0]
        return {
            "auroc": _finite(auroc),
            "sensitivity": float(np.mean(flagged[truth])),
            "specificity": float(np.mean(~flagged[~truth])),
        }

    def worst_group(self, score: np.ndarray) -> dict[str, Any]:
        """The judged group that loses most against its budget: `worst_group`,
        `worst_group_metric`, its `worst_group_drop` and whether every group is
        `groups_within_budget`."""
        worst: tuple[float, str, str, float] | None = None
        for group, mask in self.masks.items():
            now = self.group_values(score, mask)
            for metric, limit in self.budgets.items():
                base, got = self.reference[group].get(metric), now.get(metric)
                if base is None or got is None:
                    continue
                drop = base - got
                if worst is None or drop - limit > worst[0]:
                    worst = (drop - limit, group, metric, drop)
        if worst is None:
            return {}
        return {
            "worst_group": worst[1],
            "worst_group_metric": worst[2],
            "worst_group_drop": float(worst[3]),
            "groups_within_budget": bool(worst[0] <= 1e-12),
        }


def point_worst_group(
    metrics: Mapping[str, Mapping[str, Any]], splits: Any, split: str, min_cases: int
) -> dict[str, Any]:
    """A sweep point's `worst_group`: the judged `split` group where int8 is furthest
    from float32 (highest upper 95% bound of float32 - int8 AUROC, else accuracy), with
    the paired difference int8 - float32 and its interval; {} without --subgroup."""
    groups = (metrics.get("int8") or {}).get("subgroups")
    if splits.subgroups is None or not groups:
        return {}
    y = splits.split(split)[1]
    worst: dict[str, Any] | None = None
    for name, by_value in group_masks(splits.subgroups.of(split)).items():
        for value, mask in by_value.items():
            if not describe_group(y[mask], splits.positive_class, splits.num_classes,
                                  min_cases)["judged"]:  # fmt: skip
                continue
            paired = groups[name][value].get("vs_float32") or {}
            metric = "auroc" if "auroc" in paired else "accuracy"
            ci = (paired.get(metric) or {}).get("ci95")
            if ci is not None and (worst is None or -ci[0] > worst["upper"]):
                diff = paired[metric]["diff"]
                worst = {"group": f"{name}={value}", "metric": metric, "diff": diff,
                         "ci95": ci, "upper": -ci[0]}  # fmt: skip
    return {"worst_group": worst}
