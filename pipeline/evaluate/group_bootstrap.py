"""The per-group bootstrap of `--subgroup` (`pipeline.evaluate.subgroups`): every group of
every attribute for every variant at once, with the draws of the whole split's stratified
bootstrap (`pipeline.evaluate.bootstrap`) resampled within each group.

A replicate is a row of case counts; each attribute's cases are laid in cell order (group,
then class), so each stratum is a run of columns. Every count, hit, AUROC numerator and
order statistic is an integer until the end, where each value is the float the whole
split's bootstrap computes, so a group of every case gets exactly the whole split's
intervals. All of it is numpy on small reused arrays, a chunk of replicates at a time:
fresh large arrays per chunk cost more in page faults than the arithmetic on a busy host.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.evaluate import bootstrap

ROW_CELLS = 2**17  # replicates x cases x variants scored together: bounds memory
KEEP_CELLS = 2**21  # a thread keeps its work arrays from call to call up to this size
COUNT_BINS = 2**18  # order statistics by counting up to this many bins, else by partition
QUANTILES = (2.5, 97.5)  # `bootstrap.interval`'s percentiles
_THREAD = threading.local()


class Scratch:
    """Work arrays kept from one chunk of replicates to the next, and from one call to the
    next in a thread (`Scratch.of_thread`): fresh ones are above malloc's mmap threshold,
    and their page faults took most of the time on a busy host."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    @classmethod
    def of_thread(cls) -> Scratch:
        """This thread's work arrays (kept only while small: see `Plan.replicates`)."""
        if not hasattr(_THREAD, "scratch"):
            _THREAD.scratch = cls()
        return _THREAD.scratch

    def __call__(self, name: str, rows: int, cols: int, dtype: type = np.int32) -> np.ndarray:
        """`rows` rows of the (at least `rows`, `cols`) array `name`, made on first use."""
        array = self._arrays.get(name)
        if array is None or len(array) < rows or array.shape[1] != cols or array.dtype != dtype:
            array = self._arrays[name] = np.zeros((rows, cols), dtype)
        return array[:rows]


@dataclass(frozen=True)
class Segments:
    """Sums of runs of columns by label (labels sorted), without a matrix product (a wide
    one-hot product would go to the multi-threaded BLAS, which is slow on a busy host) nor
    `np.add.reduceat` (slow along rows): differences of one running sum at the runs' ends.
    """

    present: np.ndarray  # the labels that have columns
    ends: np.ndarray  # the last column of each one's run

    @classmethod
    def of(cls, labels: np.ndarray) -> Segments:
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
class Strata:
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
    ) -> Strata:  # fmt: skip
        cell = code * classes + y
        order = np.argsort(cell, kind="stable")
        if keep is not None:
            order = order[keep[order]]
        return cls(order, cell[order], np.bincount(cell[order], minlength=groups * classes), groups)

    def runs(self) -> list[tuple[int, int]]:
        """(first column, cases) of each stratum, in the order `resample_counts` draws."""
        sizes = self.cell_n[self.cell_n > 0]
        return list(zip((np.cumsum(sizes) - sizes).tolist(), sizes.tolist(), strict=True))


def draws(
    strata: list[Strata], replicates: int, seed: int, rows: int, scratch: Scratch
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
class Ranks:
    """AUROC of every result column (block, group): every block's negatives side by side
    in (block, group, score) order, one running count of their draws, and each positive's
    place among them (`bootstrap.weighted_auroc` within each group), less the negatives of
    the columns before, which no stratified replicate changes.

    The sum is the same counted from either class (a positive above a negative is a
    negative below a positive), and the class laid out for the running count costs two
    passes per replicate where the other costs five: the larger class is the one counted.
    """

    neg: np.ndarray  # count columns of every block's negatives, (block, group, score) order
    pos: np.ndarray  # count column of each (block, positive)
    lo: np.ndarray  # ... its running index past the negatives scored below it
    tied: np.ndarray  # the (block, positive) entries that tie with negatives ...
    hi: np.ndarray  # ... and their running index past those ties
    pos_of: Segments  # (block, positive) entries by result column
    tied_of: Segments
    fixed: np.ndarray  # per result column: its positives x the negatives of earlier columns
    den: np.ndarray  # per result column: positives x negatives
    wide: type  # the sums' integer type: int32 unless one could pass 2**31

    @classmethod
    def of(
        cls, neg: Sequence[np.ndarray], pos: Sequence[np.ndarray], columns: int, cases: int
    ) -> Ranks:
        """`neg`, `pos`: per block, (count column, result column, score rank below
        `cases`) of its negatives and of its positives, columns ascending block to block."""
        if sum(b.shape[1] for b in pos) > sum(b.shape[1] for b in neg):
            flip = np.array([[0], [0], [cases - 1]])  # rank -> cases - 1 - rank
            neg, pos = (
                [flip + [[1], [1], [-1]] * b for b in pos],
                [flip + [[1], [1], [-1]] * b for b in neg],
            )
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
            n[0], p[0], lo, tied, hi[tied], Segments.of(p[1]), Segments.of(p[1][tied]),
            pos_n * (np.cumsum(neg_n) - neg_n), pos_n * neg_n, wide,
        )  # fmt: skip

    def add(
        self, counts: np.ndarray, below: np.ndarray, ties: np.ndarray, scratch: Scratch
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


@dataclass(frozen=True)
class Plan:
    """Every (attribute, variant) block of a split side by side: block b's groups are the
    result columns `offsets[b]` to `offsets[b + 1]`, scored on the count columns of
    `draws` (each attribute's cases in its cell order), all blocks with a few numpy calls
    per chunk of replicates.

    A replicate redraws every cell within itself, so each cell keeps its number of cases:
    a variant's hits in a cell are the cell's cases less the draws of the cases it gets
    wrong (few); and each group's positives and negatives are fixed (`Ranks`).
    """

    strata: tuple[Strata, ...]
    offsets: tuple[int, ...]
    classes: int
    positive_class: int
    cases: np.ndarray  # cases per cell of every block (result column x classes + class)
    wrong: np.ndarray  # count columns of the cases each block's variant gets wrong ...
    wrong_of: Segments  # ... by cell of every block
    ranks: Ranks | None  # binary tasks

    @classmethod
    def of(
        cls, codes: Sequence[tuple[np.ndarray, int, np.ndarray | None]], y: np.ndarray,
        scored: Sequence[tuple[np.ndarray, np.ndarray]], pc: int,
    ) -> Plan:  # fmt: skip
        """`codes`: (each case's group, groups, the cases to score or None for all) per
        attribute; `scored`: (probabilities, predictions) per variant. The groups of cases
        left out stay as columns with no cases (NaN)."""
        classes = scored[0][0].shape[1]
        strata = tuple(Strata.of(c, g, y, classes, keep) for c, g, keep in codes)
        offsets = np.cumsum([0] + [s.groups for s in strata for _ in scored])
        preds = np.stack([pred for _, pred in scored])
        ranks = np.stack([np.unique(p[:, pc], return_inverse=True)[1] for p, _ in scored])
        wrong: list[np.ndarray] = []
        cells: list[np.ndarray] = []
        neg: list[np.ndarray] = []
        pos: list[np.ndarray] = []
        col, v = 0, len(scored)
        for i, s in enumerate(strata):
            truth, group = y[s.order], s.cell // classes
            block = offsets[i * v : (i + 1) * v, None]  # each variant's first result column
            variant, miss = np.nonzero(preds[:, s.order] != truth)  # variant after variant
            wrong.append(miss + col)
            cells.append(s.cell[miss] + block[variant, 0] * classes)
            for part, where in ((neg, truth != pc), (pos, truth == pc)) if classes == 2 else ():
                at = np.flatnonzero(where)
                rows = (np.broadcast_to(at + col, (v, len(at))), group[at] + block,
                        ranks[:, s.order[at]])  # fmt: skip
                part.append(np.stack([r.ravel() for r in rows]))
            col += len(s.order)
        cases = np.concatenate([s.cell_n for s in strata for _ in scored])
        return cls(
            strata, tuple(offsets.tolist()), classes, pc, cases, np.concatenate(wrong),
            Segments.of(np.concatenate(cells)),
            Ranks.of(neg, pos, int(offsets[-1]), len(y)) if classes == 2 else None,
        )  # fmt: skip

    def numerators(
        self, chunks: Iterable[np.ndarray], replicates: int, scratch: Scratch
    ) -> Numerators:
        """Every metric of every result column on each replicate, from chunks of case
        counts that draw every cell as often as it has cases (stratified replicates, or
        ones). Binary: AUROC, sensitivity, specificity; multi-class: accuracy and
        `recall_<c>`."""
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
        if self.ranks is not None:
            pc, r = self.positive_class, self.ranks
            return Numerators(
                {"auroc": 2 * (below - r.fixed) + ties, "sensitivity": hits[..., pc],
                 "specificity": hits[..., 1 - pc]},
                {"auroc": r.den, "sensitivity": cases[:, pc], "specificity": cases[:, 1 - pc]},
            )  # fmt: skip
        x = {
            "accuracy": hits.sum(axis=2),
            **{f"recall_{c}": hits[..., c] for c in range(self.classes)},
        }
        den = {
            "accuracy": cases.sum(axis=1),
            **{f"recall_{c}": cases[:, c] for c in range(self.classes)},
        }
        return Numerators(x, den)

    def points(self) -> dict[str, np.ndarray]:
        """metric -> (1, result columns): every case drawn once."""
        columns = sum(len(s.order) for s in self.strata)
        ones = self.numerators([np.ones((1, columns), np.int32)], 1, Scratch())
        return {m: ones.value(m) for m in ones.x}

    def replicates(self, replicates: int, seed: int) -> Numerators:
        """Every metric of every result column on each replicate: each redraws every class
        of every group within itself (strata group x class, one draw per attribute), the
        same draws for every variant."""
        width = len(self.wrong) + (0 if self.ranks is None else len(self.ranks.pos) * 3)
        per_row = sum(len(s.order) for s in self.strata) + width
        rows = bootstrap.CHUNK * max(1, ROW_CELLS // (bootstrap.CHUNK * per_row))
        # a large split's arrays are not kept (their page faults matter less than memory)
        scratch = Scratch.of_thread() if rows * per_row <= KEEP_CELLS else Scratch()
        chunks = draws(list(self.strata), replicates, seed, rows, scratch)
        return self.numerators(chunks, replicates, scratch)

    @property
    def block_sizes(self) -> np.ndarray:
        """Groups per block."""
        return np.diff(self.offsets)

    def block(self, values: Mapping[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
        """The columns of block `b` (its groups) of `values`."""
        return {m: v[:, self.offsets[b] : self.offsets[b + 1]] for m, v in values.items()}


@dataclass(frozen=True)
class Numerators:
    """Each metric as integers over fixed denominators, per replicate and result column:
    the value is `x / 2 / den` for AUROC (x counts ties once and the rest twice) and
    `x / den` otherwise, the very float the whole split's bootstrap computes; NaN where
    `den` is 0 (a group without a class)."""

    x: dict[str, np.ndarray]  # metric -> (replicates, columns) integers
    den: dict[str, np.ndarray]  # metric -> (columns,) integers

    def value(self, metric: str, cols: Any = slice(None)) -> np.ndarray:
        """(replicates, columns) floats of `metric` (of the columns `cols`)."""
        return _divide(self.x[metric][:, cols], self.den[metric][cols], metric)

    def intervals(
        self, judged: np.ndarray, paired: np.ndarray, reference_of: np.ndarray
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """(metric -> each column's `bootstrap.interval`, metric -> that of the paired
        difference from column `reference_of[column]`), for the columns a verdict reads
        (`judged`; `paired`: judged groups of the other variants); None elsewhere."""
        out: tuple[dict[str, list[Any]], dict[str, list[Any]]] = ({}, {})
        for metric, x in self.x.items():
            b, den = len(x), self.den[metric]
            ranks = _ranks(b)[0]
            # a column without cases of a class has no value in any replicate: None
            cols = np.flatnonzero(judged & (den > 0))
            # x / den keeps the order of x: its order statistics are those of the floats
            stats = _divide(_order_stats(x[:, cols], ranks), den[cols, None], metric)
            out[0][metric] = _place(_lerp(stats, b), cols, len(judged))
            cols = np.flatnonzero(paired & (den > 0) & (den[reference_of] > 0))
            diff = self.value(metric, cols) - self.value(metric, reference_of[cols])
            stats = np.partition(diff.T, np.unique(ranks), axis=1)[:, ranks]
            out[1][metric] = _place(_lerp(stats, b), cols, len(paired))
        return out


def _divide(x: np.ndarray, den: np.ndarray, metric: str) -> np.ndarray:
    """The whole split's float of each numerator (see `Numerators`)."""
    num = x * 0.5 if metric == "auroc" else x.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _ranks(b: int) -> tuple[np.ndarray, np.ndarray]:
    """np.percentile's linear method at QUANTILES over b values: the four order
    statistics it interpolates between (previous and next of each) and the weights."""
    virtual = (b - 1) * np.true_divide(QUANTILES, 100)
    below = np.floor(virtual)
    ranks = np.stack([below, below + 1], axis=1)
    ranks[virtual >= b - 1] = b - 1
    return ranks.astype(np.intp).ravel(), virtual - below


def _lerp(stats: np.ndarray, b: int) -> np.ndarray:
    """(columns, 4) order statistics of b values -> (columns, 2) percentiles, with
    np.percentile's arithmetic (`numpy.lib._function_base_impl._lerp`): the same floats."""
    gamma = _ranks(b)[1]
    before, after = stats[:, 0::2], stats[:, 1::2]
    diff = after - before
    return np.where(gamma >= 0.5, after - diff * (1 - gamma), before + diff * gamma)


def _order_stats(x: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """(columns, ranks): the `ranks`-th smallest of each column of integers x (B,
    columns); by counting (one bincount over every column's range) when the ranges are
    small, else by partition."""
    if not x.shape[1]:
        return np.zeros((0, len(ranks)), x.dtype)
    low = x.min(axis=0)
    span = x.max(axis=0) - low + 1
    if span.sum() > COUNT_BINS:
        return np.partition(x.T, np.unique(ranks), axis=1)[:, ranks]
    first = np.cumsum(span) - span  # each column's first bin
    bins = (x - (low - first)).astype(np.intp).ravel()
    seen = np.cumsum(np.bincount(bins, minlength=int(span.sum())))
    # column j's values are the bins first[j]... holding values j*B ... (j+1)*B - 1
    wanted = np.arange(x.shape[1])[:, None] * len(x) + ranks
    return np.searchsorted(seen, wanted, side="right") - first[:, None] + low[:, None]


def _place(found: np.ndarray, cols: np.ndarray, size: int) -> list[Any]:
    """[low, high] of each of `cols` from (len(cols), 2), None for the other columns."""
    out: list[Any] = [None] * size
    for c, (low, high) in zip(cols.tolist(), found.tolist(), strict=True):
        out[c] = [low, high]
    return out
