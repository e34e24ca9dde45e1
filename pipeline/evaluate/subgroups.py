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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate import bootstrap

BINARY_METRICS = ("auroc", "sensitivity", "specificity")
ROW_CELLS = 2**17  # replicates x cases x variants scored together: bounds memory
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


class _Scratch:
    """Work arrays kept from one chunk of replicates to the next: fresh ones per chunk are
    above malloc's mmap threshold, and their page faults took most of the time on a busy
    host (and in a build's first call)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __call__(self, name: str, rows: int, cols: int, dtype: type = np.int32) -> np.ndarray:
        """`rows` rows of the (at least `rows`, `cols`) array `name`, made on first use."""
        array = self._arrays.get(name)
        if array is None or len(array) < rows:
            array = self._arrays[name] = np.zeros((rows, cols), dtype)
        return array[:rows]


@dataclass(frozen=True)
class _Segments:
    """Sums of runs of columns by label (labels sorted), without a matrix product (a wide
    one-hot product would go to the multi-threaded BLAS, which is slow on a busy host) nor
    `np.add.reduceat` (slow along rows): differences of one running sum at the runs' ends.
    """

    present: np.ndarray  # the labels that have columns
    ends: np.ndarray  # the last column of each one's run

    @classmethod
    def of(cls, labels: np.ndarray) -> _Segments:
        present, starts = np.unique(labels, return_index=True)
        return cls(present, np.append(starts[1:], len(labels)) - 1)

    def add(self, values: np.ndarray, out: np.ndarray) -> None:
        """Each label's sum over its columns of `values` (B, m, integers whose sum over
        a row fits their type), into `out` (B, labels); `values` becomes its running sum.
        """
        if len(self.present):
            np.cumsum(values, axis=1, dtype=values.dtype, out=values)
            out[:, self.present] = np.diff(values[:, self.ends], axis=1, prepend=0)


@dataclass(frozen=True)
class _Strata:
    """One attribute's cases in cell order (group, then class): each stratum of a
    stratified replicate is a run of columns. Cases left out (`keep`) are in no cell."""

    order: np.ndarray  # case indices in cell order
    cell: np.ndarray  # each column's cell: group x classes + class
    cell_n: np.ndarray  # (groups x classes,) cases per cell
    groups: int

    @classmethod
    def of(
        cls, code: np.ndarray, groups: int, y: np.ndarray, classes: int,
        keep: np.ndarray | None = None,
    ) -> _Strata:  # fmt: skip
        cell = code * classes + y
        order = np.argsort(cell, kind="stable")
        if keep is not None:
            order = order[keep[order]]
        return cls(order, cell[order], np.bincount(cell[order], minlength=groups * classes), groups)

    def runs(self) -> list[tuple[int, int]]:
        """(first column, cases) of each stratum, in the order `resample_counts` draws."""
        sizes = self.cell_n[self.cell_n > 0]
        return list(zip((np.cumsum(sizes) - sizes).tolist(), sizes.tolist(), strict=True))


def _draws(
    strata: list[_Strata], replicates: int, seed: int, rows: int, scratch: _Scratch
) -> Iterator[np.ndarray]:
    """Case counts (rows, every attribute's columns side by side) int32 of stratified
    replicates, `rows` (a multiple of CHUNK) at a time, each chunk in the same scratch
    array (valid until the next): each attribute's own generator makes the draws of
    `bootstrap.resample_counts` over its strata (the same generator calls, CHUNK by
    CHUNK), so a group of every case draws as the whole split."""
    rngs = [np.random.default_rng(seed) for _ in strata]
    runs = [s.runs() for s in strata]
    widths = [len(s.order) for s in strata]
    cols = np.cumsum([0, *widths])
    shift = np.concatenate([np.repeat([f for f, _ in r], [k for _, k in r]) for r in runs])
    shift += np.repeat(cols[:-1], widths)
    n = int(cols[-1])
    where = shift + np.arange(rows)[:, None] * n  # each draw's place in the flat counts
    for start in range(0, replicates, rows):
        size = min(rows, replicates - start)
        slots, counts = scratch("slots", size, n, np.int64), scratch("counts", size, n)
        for row in range(0, size, bootstrap.CHUNK):
            end = min(row + bootstrap.CHUNK, size)
            for rng, own, col in zip(rngs, runs, cols.tolist(), strict=False):
                for first, k in own:
                    at = col + first
                    slots[row:end, at : at + k] = rng.integers(0, k, (end - row, k))
        slots += where[:size]
        counts[...] = np.bincount(slots.ravel(), minlength=size * n).reshape(size, n)
        yield counts


@dataclass(frozen=True)
class _Ranks:
    """AUROC of every result column (block, group): every block's negatives side by side
    in (block, group, score) order, one running count of their draws, and each positive's
    place among them (`bootstrap.weighted_auroc` within each group), less the negatives of
    the columns before, which no stratified replicate changes."""

    neg: np.ndarray  # count columns of every block's negatives, (block, group, score) order
    pos: np.ndarray  # count column of each (block, positive)
    lo: np.ndarray  # ... its running index past the negatives scored below it
    tied: np.ndarray  # the (block, positive) entries that tie with negatives ...
    hi: np.ndarray  # ... and their running index past those ties
    pos_of: _Segments  # (block, positive) entries by result column
    tied_of: _Segments
    fixed: np.ndarray  # per result column: its positives x the negatives of earlier columns
    den: np.ndarray  # per result column: positives x negatives
    wide: type  # the sums' integer type: int32 unless one could pass 2**31

    @classmethod
    def of(cls, neg: Sequence[np.ndarray], pos: Sequence[np.ndarray], columns: int) -> _Ranks:
        """`neg`, `pos`: per block, (count column, result column, score rank) of its
        negatives and of its positives, columns ascending from block to block."""
        n, p = np.concatenate(neg, axis=1), np.concatenate(pos, axis=1)
        n = n[:, np.lexsort((n[2], n[1]))]
        size = int(max(n[2].max(initial=0), p[2].max(initial=0))) + 1
        n_key, p_key = n[1] * size + n[2], p[1] * size + p[2]
        lo, hi = np.searchsorted(n_key, p_key, "left"), np.searchsorted(n_key, p_key, "right")
        tied = np.flatnonzero(hi != lo)
        pos_n = np.bincount(p[1], minlength=columns)
        neg_n = np.bincount(n[1], minlength=columns)
        wide = np.int32 if len(p[0]) * (len(n[0]) + 1) < 2**31 else np.int64
        return cls(
            n[0], p[0], lo, tied, hi[tied], _Segments.of(p[1]), _Segments.of(p[1][tied]),
            pos_n * (np.cumsum(neg_n) - neg_n), pos_n * neg_n, wide,
        )  # fmt: skip

    def add(
        self, counts: np.ndarray, below: np.ndarray, ties: np.ndarray, scratch: _Scratch
    ) -> None:
        """Per replicate (row of `counts`) and result column, the draws of its positives
        times the negatives drawn below them (including those of earlier columns), and
        times those tied with them, into `below` and `ties`."""
        b, p, t = len(counts), len(self.pos), len(self.tied)
        # np.take, not counts[:, index]: that gives a column-major array, slow to sum along
        # rows; integer running sums: fast, exact
        neg, cum = scratch("neg", b, len(self.neg)), scratch("cum", b, len(self.neg) + 1)
        np.cumsum(np.take(counts, self.neg, axis=1, out=neg), axis=1, out=cum[:, 1:])
        drawn = np.take(counts, self.pos, axis=1, out=scratch("drawn", b, p))
        lo = np.take(cum, self.lo, axis=1, out=scratch("lo", b, p))
        below_p = np.multiply(drawn, lo, out=scratch("below", b, p, self.wide))
        self.pos_of.add(below_p, below)
        if t:
            among = np.take(cum, self.hi, axis=1, out=scratch("hi", b, t))
            among -= np.take(lo, self.tied, axis=1, out=scratch("lo_t", b, t))
            tied = np.take(drawn, self.tied, axis=1, out=scratch("drawn_t", b, t))
            self.tied_of.add(np.multiply(tied, among, out=scratch("ties", b, t, self.wide)), ties)

    def auroc(self, below: np.ndarray, ties: np.ndarray) -> np.ndarray:
        """(B, result columns) AUROC; NaN where a group lacks a class."""
        num = below + 0.5 * ties - self.fixed
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.den > 0, num / np.where(self.den > 0, self.den, 1), np.nan)


@dataclass(frozen=True)
class _Plan:
    """Every (attribute, variant) block of a split side by side: block b's groups are the
    result columns `offsets[b]` to `offsets[b + 1]`, scored on the count columns of
    `_draws` (each attribute's cases in its cell order), all blocks with a few numpy calls
    per chunk of replicates.

    A replicate redraws every cell within itself, so each cell keeps its number of cases:
    a variant's hits in a cell are the cell's cases less the draws of the cases it gets
    wrong (few); and each group's positives and negatives are fixed (`_Ranks`).
    """

    strata: tuple[_Strata, ...]
    offsets: tuple[int, ...]
    classes: int
    positive_class: int
    cases: np.ndarray  # cases per cell of every block (result column x classes + class)
    wrong: np.ndarray  # count columns of the cases each block's variant gets wrong ...
    wrong_of: _Segments  # ... by cell of every block
    ranks: _Ranks | None  # binary tasks

    @classmethod
    def of(
        cls, codes: Sequence[tuple[np.ndarray, int, np.ndarray | None]], y: np.ndarray,
        scored: Sequence[tuple[np.ndarray, np.ndarray]], pc: int,
    ) -> _Plan:  # fmt: skip
        """`codes`: (each case's group, groups, the cases to score or None for all) per
        attribute; `scored`: (probabilities, predictions) per variant. The groups of cases
        left out stay as columns with no cases (NaN)."""
        classes = scored[0][0].shape[1]
        strata = tuple(_Strata.of(c, g, y, classes, keep) for c, g, keep in codes)
        offsets = np.cumsum([0] + [s.groups for s in strata for _ in scored])
        ranks = [np.unique(p[:, pc], return_inverse=True)[1] for p, _ in scored]
        wrong: list[np.ndarray] = []
        cells: list[np.ndarray] = []
        neg: list[np.ndarray] = []
        pos: list[np.ndarray] = []
        col, b = 0, 0
        for s in strata:
            truth, group = y[s.order], s.cell // classes
            for (_, pred), rank in zip(scored, ranks, strict=True):
                miss = np.flatnonzero(pred[s.order] != truth)
                wrong.append(miss + col)
                cells.append(s.cell[miss] + offsets[b] * classes)
                for part, where in ((neg, truth != pc), (pos, truth == pc)):
                    at = np.flatnonzero(where)
                    part.append(np.stack([at + col, group[at] + offsets[b], rank[s.order][at]]))
                b += 1
            col += len(s.order)
        cases = np.concatenate([s.cell_n for s in strata for _ in scored])
        return cls(
            strata, tuple(offsets.tolist()), classes, pc, cases, np.concatenate(wrong),
            _Segments.of(np.concatenate(cells)),
            _Ranks.of(neg, pos, int(offsets[-1])) if classes == 2 else None,
        )  # fmt: skip

    def values(
        self, chunks: Iterable[np.ndarray], replicates: int, scratch: _Scratch
    ) -> dict[str, np.ndarray]:
        """metric -> (replicates, result columns) from chunks of case counts that draw
        every cell as often as it has cases (stratified replicates, or ones). Binary:
        AUROC, sensitivity, specificity; multi-class: accuracy and `recall_<c>`."""
        missed = np.zeros((replicates, len(self.cases)), np.int32)
        below = np.zeros((replicates, self.offsets[-1]), np.int64)
        ties = np.zeros_like(below)
        start = 0
        for counts in chunks:
            end = start + len(counts)
            wrong = scratch("wrong", len(counts), len(self.wrong))
            self.wrong_of.add(np.take(counts, self.wrong, axis=1, out=wrong), missed[start:end])
            if self.ranks is not None:
                self.ranks.add(counts, below[start:end], ties[start:end], scratch)
            start = end
        shape = (replicates, self.offsets[-1], self.classes)
        hits = (self.cases - missed).reshape(shape)
        cases = self.cases.reshape(shape[1:])
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = hits / cases
            if self.ranks is not None:
                pc = self.positive_class
                return {"auroc": self.ranks.auroc(below, ties), "sensitivity": recall[..., pc],
                        "specificity": recall[..., 1 - pc]}  # fmt: skip
            out = {"accuracy": hits.sum(axis=2) / cases.sum(axis=1)}
        out.update({f"recall_{c}": recall[..., c] for c in range(self.classes)})
        return out

    def points(self) -> dict[str, np.ndarray]:
        """metric -> (1, result columns): every case drawn once."""
        columns = sum(len(s.order) for s in self.strata)
        return self.values([np.ones((1, columns), np.int32)], 1, _Scratch())

    def replicates(self, replicates: int, seed: int) -> dict[str, np.ndarray]:
        """metric -> (replicates, result columns). Each replicate redraws every class of
        every group within itself (strata group x class, one draw per attribute), the same
        draws for every variant."""
        width = len(self.wrong) + (0 if self.ranks is None else len(self.ranks.pos) * 3)
        per_row = sum(len(s.order) for s in self.strata) + width
        rows = bootstrap.CHUNK * max(1, ROW_CELLS // (bootstrap.CHUNK * per_row))
        scratch = _Scratch()
        chunks = _draws(list(self.strata), replicates, seed, rows, scratch)
        return self.values(chunks, replicates, scratch)

    @property
    def block_sizes(self) -> np.ndarray:
        """Groups per block."""
        return np.diff(self.offsets)

    def block(self, values: Mapping[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
        """The columns of block `b` (its groups) of `values`."""
        return {m: v[:, self.offsets[b] : self.offsets[b + 1]] for m, v in values.items()}


def _columns(values: np.ndarray) -> list[list[float] | None]:
    """`bootstrap.interval` of every column of (replicates, groups): one percentile call
    for the columns without NaN (the usual case), one by one for the others."""
    defined = ~np.isnan(values).any(axis=0)
    out: list[list[float] | None] = [None] * values.shape[1]
    if defined.any():
        low, high = np.percentile(values[:, defined], [2.5, 97.5], axis=0)
        for g, a, b in zip(np.flatnonzero(defined), low, high, strict=True):
            out[g] = [float(a), float(b)]
    for g in np.flatnonzero(~defined):
        out[g] = bootstrap.interval(values[:, g])
    return out


def _finite(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _point(values: Mapping[str, np.ndarray], g: int) -> dict[str, Any]:
    """A group's point metrics from `_Plan.values` of one replicate of every case once."""
    if "auroc" in values:
        return {m: _finite(values[m][0, g]) for m in BINARY_METRICS}
    recall = sorted((int(m.split("_")[1]), v) for m, v in values.items() if m != "accuracy")
    return {
        "accuracy": _finite(values["accuracy"][0, g]),
        "per_class_recall": [_finite(v[0, g]) for _, v in recall],
    }


def _intervals(
    boot: dict[str, np.ndarray], reference_of: np.ndarray, judged: np.ndarray, paired: np.ndarray
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """(metric -> each group column's 95% interval, metric -> that of the paired
    difference from the same group of the reference block `reference_of[column]`), from
    one percentile call over the columns a verdict reads (`judged`, and `paired`: judged
    groups of the other variants); None elsewhere."""
    metrics = list(boot)
    stacked = np.concatenate(
        [boot[m][:, judged] for m in metrics]
        + [boot[m][:, paired] - boot[m][:, reference_of[paired]] for m in metrics],
        axis=1,
    )
    found = iter(_columns(stacked))
    out: tuple[dict[str, list[Any]], dict[str, list[Any]]] = ({}, {})
    for part, wanted in zip(out, (judged, paired), strict=True):
        for m in metrics:
            part[m] = [next(found) if w else None for w in wanted]
    return out


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
    masks = group_masks(values)
    codes = {n: np.argmax(np.stack(list(m.values())), axis=0) for n, m in masks.items()}
    blocks = [(n, v) for n in masks for v in scored]  # attribute-major, as _Plan lays
    judged = {
        n: [describe_group(y[m], positive_class, num_classes, min_cases)["judged"]
            for m in masks[n].values()]
        for n in masks
    }  # fmt: skip
    every_case = [(codes[n], len(masks[n]), None) for n in masks]
    plan = _Plan.of(every_case, y, list(scored.values()), positive_class)
    points = plan.points()
    boot = None
    if replicates:  # intervals only for judged groups: the others' cases are not drawn
        keep = [(codes[n], len(masks[n]), np.asarray(judged[n])[codes[n]]) for n in masks]
        boot = _Plan.of(keep, y, list(scored.values()), positive_class).replicates(replicates, seed)
    reference_of = np.concatenate([
        np.arange(plan.offsets[b], plan.offsets[b + 1]) - plan.offsets[b]
        + plan.offsets[blocks.index((n, reference))]
        for b, (n, _) in enumerate(blocks)
    ])  # fmt: skip
    judged_cols = np.concatenate([judged[n] for n, _ in blocks]).astype(bool)
    paired_cols = judged_cols & np.repeat([v != reference for _, v in blocks], plan.block_sizes)
    every = None
    if boot is not None:
        every = _intervals(boot, reference_of, judged_cols, paired_cols)
    out: dict[str, dict[str, Any]] = {v: {n: {} for n in masks} for v in scored}
    for name, by_value in masks.items():
        index = {v: blocks.index((name, v)) for v in scored}
        cis = None
        if every is not None:
            cis = {
                v: {key: {m: c[plan.offsets[b] : plan.offsets[b + 1]] for m, c in part.items()}
                    for key, part in zip(("ci95", "paired"), every, strict=True)}
                for v, b in index.items()
            }  # fmt: skip
        for g, (value, mask) in enumerate(by_value.items()):
            group_points = {
                v: {"n": int(mask.sum()), **_point(plan.block(points, b), g)}
                for v, b in index.items()
            }
            group_cis = (
                _group_intervals(cis, group_points, g, reference) if judged[name][g] and cis else {}
            )
            for v in scored:
                doc = {**group_points[v], **group_cis.get(v, {})}
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
