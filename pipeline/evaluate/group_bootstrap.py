"""The per-group bootstrap of `--subgroup` (`pipeline.evaluate.subgroups`): every group of
every attribute for every variant at once, scored on the whole split's replicates
(`bootstrap.resample_counts`, stratified by class): a group's replicate is the whole
split's replicate restricted to the group's cases, so no group draws again and every
variant of every group is scored on the same draws (paired).

A group's size and class counts then vary from replicate to replicate (as they would from
one validation split to the next); a replicate in which a group has no case of a class
gives no value for the metrics that need it, and is left out of their interval as the
whole split's `bootstrap.interval` leaves out undefined values. Every count, hit and AUROC
numerator is an integer until the end, where each value is the float the whole split's
bootstrap computes, so a group of every case gets exactly the whole split's intervals.
All of it is numpy on reused arrays, BATCH replicates at a time (the whole split's chunks
gathered), for the judged groups only (the others get points, no intervals): fresh large
arrays per batch cost more in page faults than the arithmetic on a busy host. How it is
measured and what each step saved: BENCHMARKS.md, "What `--subgroup` adds to the evaluate
stage".
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipeline.evaluate.row_intervals import row_intervals

KEEP_CELLS = 2**21  # a thread keeps its work arrays from call to call up to this size
# replicates scored together (the whole split's chunks are gathered up to it): fewer numpy
# calls than chunk by chunk; a build's one evaluate stage pays the page faults of a larger
# batch's fresh work arrays (1000 was faster warm, slower in a fresh process)
BATCH = 500
_THREAD = threading.local()


class Scratch:
    """Work arrays kept from one batch of replicates to the next, and from one call to the
    next in a thread (`Scratch.of_thread`): fresh ones are above malloc's mmap threshold,
    and their page faults took most of the time on a busy host."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    @classmethod
    def of_thread(cls) -> Scratch:
        """This thread's work arrays (kept only while small: see `Tally`)."""
        if not hasattr(_THREAD, "scratch"):
            _THREAD.scratch = cls()
        return _THREAD.scratch

    def __call__(self, name: str, rows: int, cols: int, dtype: type = np.int32) -> np.ndarray:
        """A (`rows`, `cols`) array on the start of the flat array `name`, made on first
        use and again only when too small (plans of other widths share it)."""
        flat = self._arrays.get(name)
        if flat is None or len(flat) < rows * cols or flat.dtype != dtype:
            flat = self._arrays[name] = np.zeros(rows * cols, dtype)
        return flat[: rows * cols].reshape(rows, cols)


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
        """The runs of `labels` (sorted)."""
        ends = np.flatnonzero(labels[1:] != labels[:-1])
        ends = np.append(ends, len(labels) - 1) if len(labels) else ends
        return cls(labels[ends], ends)

    def add(self, values: np.ndarray, out: np.ndarray) -> None:
        """Each label's sum over its columns of `values` (B, m, integers whose sum over
        a row fits their type), into `out` (B, labels); `values` becomes its running sum.
        """
        if len(self.present):
            np.cumsum(values, axis=1, dtype=values.dtype, out=values)
            out[:, self.present] = np.diff(values[:, self.ends], axis=1, prepend=0)


@dataclass(frozen=True)
class Strata:
    """One attribute's cases in cell order (group, then class): each cell is a run of
    columns, so a replicate's cases per cell are one segment sum."""

    order: np.ndarray  # case indices in cell order
    cell: np.ndarray  # each column's cell: group x classes + class
    groups: int

    @classmethod
    def of(cls, code: np.ndarray, groups: int, y: np.ndarray, classes: int) -> Strata:
        cell = code * classes + y
        order = np.argsort(cell, kind="stable")
        return cls(order, cell[order], groups)


@dataclass(frozen=True)
class Ranks:
    """AUROC of every result column (block, group): every block's negatives side by side
    in (block, group, score) order, one running count of their draws, and each positive's
    place among them (`bootstrap.weighted_auroc` within each group); the negatives of the
    columns before are taken off per replicate (`Tally.numerators`).

    The sum is the same counted from either class (a positive above a negative is a
    negative below a positive), and the class laid out for the running count costs two
    passes per replicate where the other costs four: the larger class is the one counted.

    The running count starts at `offset`, a power of two above any column's sum, so each
    column's sum also holds its draws of the other class (`offset` times them): the
    group's cases of that class come without a pass of their own (`Ranks.unpack`).
    """

    neg: np.ndarray  # the offset's column, then the cases of every block's negatives,
    # (block, group, score) order
    pos: np.ndarray  # the case of each (block, positive)
    lo: np.ndarray  # ... its running index past the negatives scored below it
    tied: np.ndarray  # the (block, positive) entries that tie with negatives ...
    hi: np.ndarray  # ... and their running index past those ties
    pos_of: Segments  # (block, positive) entries by result column
    tied_of: Segments
    neg_at: np.ndarray  # where each result column's run of `neg` starts, and the end
    pos_at: np.ndarray  # ... of `pos`
    flipped: bool  # the positives are the class counted (laid out as `neg`)
    wide: type  # the draws' and sums' integer type: int32 unless one could pass 2**31
    shift: int  # offset = 2**shift

    @classmethod
    def of(
        cls, neg: Sequence[np.ndarray], pos: Sequence[np.ndarray], cases: int, columns: int
    ) -> Ranks:
        """`neg`, `pos`: per block, (case, result column, score rank below `cases`) of its
        negatives and of its positives, columns ascending block to block; `columns`: the
        result columns."""
        flipped = sum(b.shape[1] for b in pos) > sum(b.shape[1] for b in neg)
        if flipped:
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
        # a column's sum: at most (its draws of the other class, at most len(p) in all)
        # x (the running count, at most len(n))
        shift = (len(p[0]) * (len(n[0]) + 1)).bit_length()
        packed = (len(p[0]) + 1) << shift
        if packed >= 2**63:
            raise ValueError(f"{len(p[0])} x {len(n[0])} cases are too many to count in int64")
        wide = np.int32 if packed < 2**31 else np.int64
        every = np.arange(columns + 1)
        return cls(
            np.append(cases, n[0]), p[0], lo, tied, hi[tied], Segments.of(p[1]),
            Segments.of(p[1][tied]), np.searchsorted(n[1], every), np.searchsorted(p[1], every),
            flipped, wide, shift,
        )  # fmt: skip

    def add(self, draws: np.ndarray, out: Mapping[str, np.ndarray], scratch: Scratch) -> None:
        """Per replicate (row of `draws`, the draws of each case, then the offset: `wide`
        integers) and result column, the draws of its positives times the negatives drawn
        below them (including those of earlier columns) plus the offset, and times those
        tied with them, into `out["below"]` (packed: see `unpack`) and `out["ties"]`; its
        draws of the counted class into `out["counted"]`."""
        b, p, t, wide = len(draws), len(self.pos), len(self.tied), self.wide
        # a gather, not draws[:, index]: that gives a column-major array, slow to sum along
        # rows; integer running sums: fast, exact
        cum = _gather(draws, self.neg, scratch("cum", b, len(self.neg), wide))
        np.cumsum(cum, axis=1, out=cum)
        _run_sums(cum, self.neg_at, out["counted"], scratch)
        drawn = _gather(draws, self.pos, scratch("drawn", b, p, wide))
        lo = _gather(cum, self.lo, scratch("lo", b, p, wide))
        if t:
            among = _gather(cum, self.hi, scratch("hi", b, t, wide))
            among -= _gather(lo, self.tied, scratch("lo_t", b, t, wide))
            tied = _gather(drawn, self.tied, scratch("drawn_t", b, t, wide))
            self.tied_of.add(np.multiply(tied, among, out=scratch("ties", b, t, wide)), out["ties"])
        self.pos_of.add(np.multiply(drawn, lo, out=lo), out["below"])  # in place: less memory

    def unpack(self, packed: np.ndarray, other: np.ndarray) -> None:
        """Each column's draws of the other class into `other`, and its sum in place of
        `add`'s packed sums."""
        np.right_shift(packed, self.shift, out=other)
        np.bitwise_and(packed, (1 << self.shift) - 1, out=packed)

    def keep(self, columns: np.ndarray) -> Ranks:
        """These ranks of the result columns `columns` (bool per column) only: the cases of
        the others are left out (their sums are 0), and every index moves past them."""
        n_col, p_col = _labels(self.neg_at), _labels(self.pos_at)
        n_keep, p_keep = columns[n_col], columns[p_col]
        dropped = np.concatenate([[0], np.cumsum(~n_keep)])  # entries dropped before each
        t_keep = p_keep[self.tied]
        lo, hi = self.lo[p_keep], self.hi[t_keep]
        tied = (np.cumsum(p_keep) - 1)[self.tied[t_keep]]
        every, p_col = np.arange(len(columns) + 1), p_col[p_keep]
        return replace(
            self, neg=self.neg[np.append(True, n_keep)], pos=self.pos[p_keep],
            lo=lo - dropped[lo], tied=tied,
            hi=hi - dropped[hi], pos_of=Segments.of(p_col), tied_of=Segments.of(p_col[tied]),
            neg_at=np.searchsorted(n_col[n_keep], every), pos_at=np.searchsorted(p_col, every),
        )  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """Every (attribute, variant) block of a split side by side: block b's groups are the
    result columns `offsets[b]` to `offsets[b + 1]`, scored on the whole split's case
    counts, all blocks with a few numpy calls per batch of replicates (`Tally`).

    A variant's hits in a cell (group, class) are the cell's draws less the draws of the
    cases it gets wrong (few); every block of an attribute shares its cells' draws. A
    block whose variant decides every case as an earlier variant does and orders every
    positive-negative pair of each group alike (e.g. an int8 file and the float model it
    was made from, on a small split) has that block's values on every replicate: it is
    not scored, its columns take the earlier block's (`source`).
    """

    strata: tuple[Strata, ...]
    offsets: tuple[int, ...]
    classes: int
    positive_class: int
    cases: int  # of the split
    columns: np.ndarray  # multi-class: every attribute's cases in its cell order, ...
    cell_of: Segments  # ... by attribute cell (binary: none; `Ranks.add` counts the cells)
    cell_index: np.ndarray  # the cell of each block cell (column x classes + class)
    wrong: np.ndarray  # the cases each block's variant gets wrong ...
    wrong_of: Segments  # ... by block cell
    ranks: Ranks | None  # binary tasks
    source: np.ndarray  # each result column's, or the column whose values it shares

    @classmethod
    def of(
        cls, codes: Sequence[tuple[np.ndarray, int]], y: np.ndarray,
        scored: Sequence[tuple[np.ndarray, np.ndarray]], pc: int,
    ) -> Plan:  # fmt: skip
        """`codes`: (each case's group, groups) per attribute; `scored`: (probabilities,
        predictions) per variant."""
        classes = scored[0][0].shape[1]
        strata = tuple(Strata.of(c, g, y, classes) for c, g in codes)
        offsets = np.cumsum([0] + [s.groups for s in strata for _ in scored])
        first = np.cumsum([0] + [s.groups * classes for s in strata])  # attributes' 1st cells
        preds = np.stack([pred for _, pred in scored])
        score_ranks = np.stack([np.unique(p[:, pc], return_inverse=True)[1] for p, _ in scored])
        wrong: list[np.ndarray] = []
        cells: list[np.ndarray] = []
        neg: list[np.ndarray] = []
        pos: list[np.ndarray] = []
        v = len(scored)
        source = np.arange(int(offsets[-1]))
        for i, s in enumerate(strata):
            truth, group = y[s.order], s.cell // classes
            block = offsets[i * v : (i + 1) * v, None]  # each variant's first result column
            for j, k in _same_blocks(truth, group, score_ranks[:, s.order],
                                     preds[:, s.order], pc if classes == 2 else None):  # fmt: skip
                source[block[j, 0] : block[j, 0] + s.groups] = source[block[k, 0]] + np.arange(
                    s.groups
                )
            variant, miss = np.nonzero(preds[:, s.order] != truth)  # variant after variant
            wrong.append(s.order[miss])
            cells.append(s.cell[miss] + block[variant, 0] * classes)
            for part, where in ((neg, truth != pc), (pos, truth == pc)) if classes == 2 else ():
                at = np.flatnonzero(where)
                rows = (np.broadcast_to(s.order[at], (v, len(at))), group[at] + block,
                        score_ranks[:, s.order[at]])  # fmt: skip
                part.append(np.stack([r.ravel() for r in rows]))
        if classes == 2:  # the groups' cases of each class come with the ranks (`Ranks.add`)
            ranks = Ranks.of(neg, pos, len(y), int(offsets[-1]))
            laid, cell_index = np.zeros(0, np.intp), np.arange(int(offsets[-1]) * 2)
        else:
            own = np.arange(classes * max(s.groups for s in strata))
            ranks, laid = None, np.concatenate([s.order for s in strata])
            cell_index = np.concatenate([own[: s.groups * classes] + f
                                         for s, f in zip(strata, first, strict=False)
                                         for _ in scored])  # fmt: skip
        return cls(
            strata, tuple(offsets.tolist()), classes, pc, len(y), laid,
            Segments.of(np.concatenate([s.cell + f for s, f in zip(strata, first, strict=False)])
                        if ranks is None else laid),
            cell_index, np.concatenate(wrong), Segments.of(np.concatenate(cells)), ranks,
            source,
        )  # fmt: skip

    @property
    def shared(self) -> np.ndarray:
        """Whether each result column takes another column's values (`source`)."""
        return self.source != np.arange(len(self.source))

    @property
    def counted_class(self) -> int:
        """The class a binary task's ranks count (`Ranks`)."""
        flipped = self.ranks is not None and self.ranks.flipped
        return self.positive_class if flipped else 1 - self.positive_class

    def tally(self, replicates: int) -> Tally:
        """An empty tally of `replicates` replicates, to be fed their case counts."""
        return Tally(self, replicates)

    def keep(self, columns: np.ndarray) -> Plan:
        """This plan scoring the result columns `columns` (bool per column) only, e.g. the
        groups whose intervals a report shows: a tally of it gives the others no values
        (a kept column sharing an earlier one's values takes them, unscored)."""
        columns = columns & ~self.shared
        cell = np.repeat(self.wrong_of.present, np.diff(self.wrong_of.ends, prepend=-1))
        kept = columns[cell // self.classes]
        ranks = None if self.ranks is None else self.ranks.keep(columns)
        return replace(self, wrong=self.wrong[kept], wrong_of=Segments.of(cell[kept]), ranks=ranks)

    def points(self) -> dict[str, np.ndarray]:
        """metric -> (result columns,): every case drawn once."""
        ones = Tally(self, 1)
        ones.add(np.ones((1, self.cases), np.int32))
        values = ones.numerators()
        return {m: values.value(m)[:, 0] for m in values.x}

    @property
    def block_sizes(self) -> np.ndarray:
        """Groups per block."""
        return np.diff(self.offsets)

    def block(self, values: Mapping[str, Any], b: int) -> dict[str, Any]:
        """The result columns of block `b` (its groups) of `values` (arrays or lists,
        columns first)."""
        return {m: v[self.offsets[b] : self.offsets[b + 1]] for m, v in values.items()}


class Tally:
    """A `Plan`'s integers over replicates, fed chunk by chunk with the whole split's case
    counts (`add`, e.g. as `bootstrap.intervals` streams them), then `numerators`. The
    chunks are scored BATCH replicates at a time: each numpy call then costs less per
    replicate than on one chunk of `bootstrap.CHUNK`."""

    def __init__(self, plan: Plan, replicates: int) -> None:
        self.plan, self.replicates, self.filled, self.received = plan, replicates, 0, 0
        self.pending: list[np.ndarray] = []  # the chunks received and not scored yet
        self.counted: Numerators | None = None  # once every replicate is in (`numerators`)
        ranks = plan.ranks
        per_row = plan.cases + len(plan.columns) + len(plan.wrong)
        per_row += 0 if ranks is None else len(ranks.neg) + 2 * len(ranks.pos)
        # a large split's arrays are not kept (their page faults matter less than memory)
        small = min(BATCH, replicates) * per_row <= KEEP_CELLS
        self.scratch = Scratch.of_thread() if small else Scratch()
        # replicates last: each column's replicates are one row for the intervals' partition
        self.cells = np.zeros((int(plan.cell_index.max(initial=-1)) + 1, replicates), np.int32)
        self.missed = np.zeros((len(plan.cell_index), replicates), np.int32)
        self.below = np.zeros((plan.offsets[-1], replicates), np.int64)
        self.ties = np.zeros_like(self.below)

    def add(self, counts: np.ndarray) -> None:
        """The next replicates: (chunk, cases) draws of each case of the split (kept, not
        copied, until their batch is scored: not to be changed after)."""
        received = self.received + len(counts)
        if received > self.replicates:
            raise ValueError(f"a tally of {self.replicates} replicates got {received}")
        self.pending.append(counts)
        self.received = received
        if received - self.filled >= BATCH or received == self.replicates:
            self._score()

    def _score(self) -> None:
        """Scores the pending chunks."""
        plan, scratch, start, end = self.plan, self.scratch, self.filled, self.received
        b = end - start
        wide = np.int32 if plan.ranks is None else plan.ranks.wide
        draws = scratch("draws", b, plan.cases + 1, wide)
        draws[:, -1] = 0 if plan.ranks is None else 1 << plan.ranks.shift  # `Ranks.add`
        at = 0
        for counts in self.pending:  # float counts are whole numbers
            np.copyto(draws[at : at + len(counts), :-1], counts, casting="unsafe")
            at += len(counts)
        self.pending = []
        wrong = _gather(draws, plan.wrong, scratch("wrong", b, len(plan.wrong), wide))
        plan.wrong_of.add(wrong, self.missed[:, start:end].T)
        if plan.ranks is None:
            laid = _gather(draws, plan.columns, scratch("laid", b, len(plan.columns)))
            plan.cell_of.add(laid, self.cells[:, start:end].T)
        else:  # a binary task's cells are (result column, class)
            counted = plan.counted_class
            out: dict[str, np.ndarray] = {
                "below": self.below, "ties": self.ties, "counted": self.cells[counted::2],
            }  # fmt: skip
            plan.ranks.add(draws, {k: v[:, start:end].T for k, v in out.items()}, scratch)
        self.filled = end

    def numerators(self) -> Numerators:
        """Every metric of every result column on each replicate. Binary: AUROC,
        sensitivity, specificity; multi-class: accuracy and `recall_<c>`."""
        if self.filled != self.replicates:
            raise ValueError(f"a tally of {self.replicates} replicates got {self.filled}")
        if self.counted is None:
            self.counted = self._numerators()
            shared = np.flatnonzero(self.plan.shared)
            for part in (self.counted.x, self.counted.den):
                for values in part.values():
                    values[shared] = values[self.plan.source[shared]]
        return self.counted

    def _numerators(self) -> Numerators:
        """`numerators`, made once: the binary ones in the tally's own arrays (fresh ones
        of this size cost more in page faults than their arithmetic)."""
        plan = self.plan
        shape = (plan.offsets[-1], plan.classes, self.replicates)
        if plan.ranks is None:
            cases = np.take(self.cells, plan.cell_index, axis=0).reshape(shape)
            hits = cases - self.missed.reshape(shape)
            x = {
                "accuracy": hits.sum(axis=1),
                **{f"recall_{c}": hits[:, c] for c in range(plan.classes)},
            }
            den = {
                "accuracy": cases.sum(axis=1),
                **{f"recall_{c}": cases[:, c] for c in range(plan.classes)},
            }
            return Numerators(x, den)
        # binary: a cell per (column, class); the other class's draws come with the sums
        plan.ranks.unpack(self.below, self.cells[1 - plan.counted_class :: 2])
        cases = self.cells.reshape(shape)
        hits = np.subtract(cases, self.missed.reshape(shape), out=self.missed.reshape(shape))
        pc = plan.positive_class
        pos, neg = cases[:, pc].astype(np.int64), cases[:, 1 - pc].astype(np.int64)
        counted, other = (pos, neg) if plan.ranks.flipped else (neg, pos)
        # each column's running count began with the counted class of the columns before
        before = np.cumsum(counted, axis=0)
        before -= counted
        before *= other
        auroc = self.below  # 2 x (the sum - before) + ties
        auroc -= before
        auroc *= 2
        auroc += self.ties
        return Numerators(
            {"auroc": auroc, "sensitivity": hits[:, pc], "specificity": hits[:, 1 - pc]},
            {"auroc": np.multiply(pos, neg, out=pos), "sensitivity": cases[:, pc],
             "specificity": cases[:, 1 - pc]},
        )  # fmt: skip


@dataclass(frozen=True)
class Numerators:
    """Each metric as integers per result column and replicate: the value is
    `x / 2 / den` for AUROC (x counts ties once and the rest twice) and `x / den`
    otherwise, the very float the whole split's bootstrap computes; NaN where `den` is 0
    (a group without a class in that replicate)."""

    x: dict[str, np.ndarray]  # metric -> (columns, replicates) integers
    den: dict[str, np.ndarray]  # metric -> (columns, replicates) integers

    def value(
        self, metric: str, cols: Any = slice(None), out: np.ndarray | None = None
    ) -> np.ndarray:
        """(columns, replicates) floats of `metric` (of the columns `cols`), into `out`."""
        return _divide(self.x[metric][cols], self.den[metric][cols], metric, out)

    def intervals(
        self, judged: np.ndarray, paired: np.ndarray, reference_of: np.ndarray
    ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
        """(metric -> each column's `bootstrap.interval`, metric -> that of the paired
        difference from column `reference_of[column]`), for the columns a verdict reads
        (`judged`; `paired`: judged groups of the other variants, whose reference columns
        are judged too); None elsewhere. Every metric's values and differences are one
        array, partitioned at once."""
        cols, paired_cols = np.flatnonzero(judged), np.flatnonzero(paired)
        at = np.zeros(len(judged), np.intp)
        at[cols] = np.arange(len(cols))
        mine, theirs = at[paired_cols], at[reference_of[paired_cols]]
        k, p = len(cols), len(paired_cols)
        replicates = len(next(iter(self.den.values()))[0])
        # the thread's while small: a fresh one costs more in page faults than its partition
        cells = len(self.x) * (k + p) * replicates
        scratch = Scratch.of_thread() if cells <= KEEP_CELLS else Scratch()
        rows = scratch("interval_rows", len(self.x) * (k + p), replicates, np.float64)
        rows = rows.reshape(len(self.x), k + p, replicates)
        for values, metric in zip(rows, self.x, strict=True):
            self.value(metric, cols, out=values[:k])
            np.subtract(values[mine], values[theirs], out=values[k:])
        found = row_intervals(rows.reshape(-1, rows.shape[2]))
        out: tuple[dict[str, list[Any]], dict[str, list[Any]]] = ({}, {})
        for i, metric in enumerate(self.x):
            mine_found = found[i * (k + p) : (i + 1) * (k + p)]
            out[0][metric] = _place(mine_found[:k], cols, len(judged))
            out[1][metric] = _place(mine_found[k:], paired_cols, len(paired))
        return out


def _same_blocks(
    truth: np.ndarray, group: np.ndarray, ranks: np.ndarray, preds: np.ndarray, pc: int | None
) -> list[tuple[int, int]]:
    """(variant, the earlier variant whose block it equals) of one attribute, its cases in
    cell order: the same cases decided wrongly and (binary, `pc` the positive class) every
    positive-negative pair of each group compared alike. The pairs a positive is above
    (or tied with) nest from positive to positive, as those of a negative do, so they are
    fixed by how many there are for each case: for each positive, the negatives of its
    group below it and those not above it, and for each negative the positives of its
    group above it and those not below it."""
    misses = [np.flatnonzero(pred != truth) for pred in preds]
    first: dict[bytes, int] = {}
    same = []
    for j, miss in enumerate(misses):
        if not any(np.array_equal(miss, m) for k, m in enumerate(misses) if k != j):
            continue  # decides some case as no other variant does (most often)
        sig = [miss]
        if pc is not None:
            key = group * (int(ranks[j].max(initial=0)) + 1) + ranks[j]  # pairs within a group
            key_p, key_n = key[truth == pc], key[truth != pc]
            sorted_p, sorted_n = np.sort(key_p), np.sort(key_n)
            sig += [np.searchsorted(sorted_n, key_p, side) for side in ("left", "right")]
            sig += [np.searchsorted(sorted_p, key_n, side) for side in ("left", "right")]
        k = first.setdefault(b"".join(np.asarray(a, np.int64).tobytes() for a in sig), j)
        if k != j:
            same.append((j, k))
    return same


def _gather(values: np.ndarray, index: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The columns `index` of `values`, into `out`. mode "clip" (the indices are valid by
    construction): the default "raise" goes through a buffer when given `out`, 2-3x slower.
    """
    return np.take(values, index, axis=1, out=out, mode="clip")


def _labels(at: np.ndarray) -> np.ndarray:
    """The label of each entry of runs that start at `at[i]` (label i) and end at `at[-1]`."""
    return np.repeat(np.arange(len(at) - 1), np.diff(at))


def _run_sums(cum: np.ndarray, at: np.ndarray, out: np.ndarray, scratch: Scratch) -> None:
    """The sum of each run `at[i]` to `at[i + 1]` of the columns whose running sums
    (after a first column of 0) are `cum`, into `out`."""
    ends = _gather(cum, at, scratch("run_ends", len(cum), len(at), cum.dtype.type))
    np.subtract(ends[:, 1:], ends[:, :-1], out=out)


def _divide(
    x: np.ndarray, den: np.ndarray, metric: str, out: np.ndarray | None = None
) -> np.ndarray:
    """The whole split's float of each numerator (see `Numerators`), into `out`: the
    same division of the same floats (x * 0.5 and x * 1.0 are exact)."""
    out = np.empty(x.shape) if out is None else out
    np.multiply(x, 0.5 if metric == "auroc" else 1.0, out=out)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(out, den, out=out)
    empty = den == 0  # counts: never below 0
    if empty.any():
        out[empty] = np.nan
    return out


def _place(found: list[Any], cols: np.ndarray, size: int) -> list[Any]:
    """Each of `cols`'s [low, high] (or None) from `found`, None for the other columns."""
    out: list[Any] = [None] * size
    for c, interval in zip(cols.tolist(), found, strict=True):
        out[c] = interval
    return out
