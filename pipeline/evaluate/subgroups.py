"""The verdict per subgroup (`--subgroup`): every variant's metrics in each site, sex or age
band, with the same stratified bootstrap as the whole split resampled within the group.

A group is judged only with at least `--min-subgroup-cases` positives and as many
negatives (multi-class: that many cases of every class); smaller groups are reported with
the reason and no verdict rests on them. Within a judged group, each replicate redraws
each class's cases of the group, and every variant is scored on the same draws, so
`variant - float32` is paired as for the whole split (`pipeline.evaluate.bootstrap`).

`GroupBudget` is what the decisions (auto sparsity, structured auto, the int8 remedies)
ask: which judged validation group loses most against its budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate import bootstrap

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


def grouped_auroc(
    truth: np.ndarray, score: np.ndarray, codes: np.ndarray, groups: int, counts: np.ndarray
) -> np.ndarray:
    """AUROC of every group on each replicate, (B, groups), from one sort: the count-
    weighted Mann-Whitney statistic of `bootstrap.weighted_auroc`, with the negatives
    sorted by (group, score) so a positive is compared with its own group's only."""
    truth, codes = np.asarray(truth, bool), np.asarray(codes)
    key = codes * 4.0 + np.clip(np.asarray(score, np.float64), 0.0, 1.0)  # groups apart
    pos, neg = np.flatnonzero(truth), np.flatnonzero(~truth)
    neg = neg[np.argsort(key[neg], kind="stable")]
    neg_key = key[neg]
    lo = np.searchsorted(neg_key, key[pos], "left")
    hi = np.searchsorted(neg_key, key[pos], "right")
    start = np.searchsorted(neg_key, codes[pos] * 4.0 - 1.0, "left")  # the group's first
    cum = np.zeros((len(counts), len(neg) + 1))
    np.cumsum(counts[:, neg], axis=1, out=cum[:, 1:])
    below = (cum[:, lo] + cum[:, hi]) * 0.5 - cum[:, start]  # ties count one half
    pos_of = np.eye(groups)[codes[pos]]  # (positives, groups)
    num = (counts[:, pos] * below) @ pos_of
    den = (counts[:, pos] @ pos_of) * (counts[:, neg] @ np.eye(groups)[codes[neg]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _rates(
    y: np.ndarray, pred: np.ndarray, codes: np.ndarray, groups: int, classes: int,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(recall of every class in every group (B, groups, classes), accuracy of every
    group (B, groups)) on each replicate; NaN where a group lacks the class."""
    correct = (pred == y).astype(np.float64)
    member = np.eye(groups * classes)[codes * classes + y]  # (n, groups x classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        hits, cases = counts @ (member * correct[:, None]), counts @ member
        recall = (hits / cases).reshape(len(counts), groups, classes)
        accuracy = hits.reshape(len(counts), groups, classes).sum(axis=2) / cases.reshape(
            len(counts), groups, classes
        ).sum(axis=2)
    return recall, accuracy


def _values(
    scored: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    codes: np.ndarray,
    groups: int,
    pc: int,
    counts: np.ndarray,
) -> dict[str, dict[str, np.ndarray]]:
    """variant -> metric -> (B, groups): every group's metrics on each replicate (counts
    of ones: the point values). Binary: AUROC, sensitivity, specificity; multi-class:
    accuracy and `recall_<c>`."""
    out = {}
    for name, (probs, pred) in scored.items():
        classes = probs.shape[1]
        recall, accuracy = _rates(y, pred, codes, groups, classes, counts)
        if classes == 2:
            out[name] = {
                "auroc": grouped_auroc(y == pc, probs[:, pc], codes, groups, counts),
                "sensitivity": recall[:, :, pc],
                "specificity": recall[:, :, 1 - pc],
            }
        else:
            out[name] = {"accuracy": accuracy}
            out[name].update({f"recall_{c}": recall[:, :, c] for c in range(classes)})
    return out


def _replicates(
    scored: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    codes: np.ndarray,
    groups: int,
    pc: int,
    replicates: int,
    seed: int,
) -> dict[str, dict[str, np.ndarray]]:
    """variant -> metric -> (replicates, groups). Each replicate redraws every class of
    every group within itself (strata group x class), the same draws for every variant."""
    classes = next(iter(scored.values()))[0].shape[1]
    samples: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in scored}
    for counts in bootstrap.resample_counts(codes * classes + y, replicates, seed):
        for name, by_metric in _values(scored, y, codes, groups, pc, counts).items():
            for metric, v in by_metric.items():
                samples[name].setdefault(metric, []).append(v)
    return {n: {m: np.concatenate(v) for m, v in d.items()} for n, d in samples.items()}


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _point(values: Mapping[str, np.ndarray], g: int) -> dict[str, Any]:
    """A group's point metrics from `_values` on one replicate of every case once."""
    if "auroc" in values:
        return {m: _finite(values[m][0, g]) for m in BINARY_METRICS}
    recall = sorted((int(m.split("_")[1]), v) for m, v in values.items() if m != "accuracy")
    return {
        "accuracy": _finite(values["accuracy"][0, g]),
        "per_class_recall": [_finite(v[0, g]) for _, v in recall],
    }


def _intervals(
    joined: dict[str, dict[str, np.ndarray]], points: dict[str, dict[str, Any]], reference: str
) -> dict[str, dict[str, Any]]:
    """ci95 of each variant and its paired difference from `reference`."""
    out: dict[str, dict[str, Any]] = {}
    for name, by_metric in joined.items():
        doc: dict[str, Any] = {"ci95": {m: bootstrap.interval(v) for m, v in by_metric.items()}}
        if name != reference:
            diffs = {}
            for m, v in by_metric.items():
                mine, theirs = _metric(points[name], m), _metric(points[reference], m)
                diffs[m] = {
                    "diff": None if mine is None or theirs is None else mine - theirs,
                    "ci95": bootstrap.interval(v - joined[reference][m]),
                }
            doc["vs_float32"] = diffs
        out[name] = doc
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
    """variant -> name -> value -> its metrics in the group (`metrics.<v>.subgroups`).

    Args:
        scored: variant -> (probabilities (N, C), predictions (N,)), float32 first.
        y: labels of the split.
        values: name -> each case's group (`SubgroupValues.of(split)`).
        metrics: variant -> its whole-split metrics (for `flips`).
        positive_class: the positive class of a binary task.
        min_cases: `--min-subgroup-cases`.
        replicates: bootstrap replicates (0: no intervals).
        seed: the resampling seed (the whole split's, so a group of every case gets the
            whole split's intervals).
    """
    reference = next(iter(scored))
    num_classes = next(iter(scored.values()))[0].shape[1]
    y = np.asarray(y)
    out: dict[str, dict[str, Any]] = {name: {} for name in scored}
    for name, by_value in group_masks(values).items():
        masks = list(by_value.values())
        codes = np.argmax(np.stack(masks), axis=0)  # each case's group index
        ones = np.ones((1, len(y)))
        points = _values(scored, y, codes, len(masks), positive_class, ones)
        boot = (
            _replicates(scored, y, codes, len(masks), positive_class, replicates, seed)
            if replicates
            else None
        )
        for v in scored:
            out[v][name] = {}
        for g, (value, mask) in enumerate(by_value.items()):
            judged = describe_group(y[mask], positive_class, num_classes, min_cases)["judged"]
            group_points = {v: {"n": int(mask.sum()), **_point(points[v], g)} for v in scored}
            cis = {}
            if judged and boot is not None:
                column = {v: {m: a[:, g] for m, a in d.items()} for v, d in boot.items()}
                cis = _intervals(column, group_points, reference)
            for v in scored:
                doc = {**group_points[v], **cis.get(v, {})}
                flips = _group_flips(metrics[v].get("flips"), mask) if v != reference else None
                if flips is not None:
                    doc["flips"] = flips
                out[v][name][value] = doc
    return out


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
