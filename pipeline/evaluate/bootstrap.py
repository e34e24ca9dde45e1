"""How sure are we: stratified bootstrap intervals of the test metrics, and paired ones.

Each replicate redraws, within each class, as many cases as the class holds (with
replacement), so every replicate keeps the test split's class balance and sensitivity and
specificity keep their denominators. A replicate is a vector of case counts; every variant
is scored on the same counts, so `variant - float32` is paired: the case mix that moves both
models cancels, and the paired interval is much narrower than either model's own.

All replicates are scored at once with numpy: AUROC is the Mann-Whitney statistic weighted
by the counts (ties count one half), i.e. sklearn's `roc_auc_score(..., sample_weight=counts)`
of each replicate, from one sort of the scores. Intervals are the 2.5 and 97.5 percentiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

CHUNK = 250  # replicates scored together: bounds memory at CHUNK x cases
INTERVAL_METRICS = ("auroc", "sensitivity", "specificity", "accuracy", "balanced_accuracy")
PAIRED_METRICS = ("auroc", "sensitivity", "specificity")


def resample_counts(y: np.ndarray, replicates: int, seed: int) -> Iterator[np.ndarray]:
    """Case counts (chunk, n) of stratified bootstrap replicates, CHUNK at a time.

    Deterministic in (labels, replicates, seed): the same seed gives the same report.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    for start in range(0, replicates, CHUNK):
        size = min(CHUNK, replicates - start)
        counts = np.zeros((size, len(y)))
        rows = np.arange(size)[:, None]
        for idx in groups:
            draws = rng.integers(0, len(idx), (size, len(idx)))  # with replacement
            block = np.bincount((draws + rows * len(idx)).ravel(), minlength=size * len(idx))
            counts[:, idx] = block.reshape(size, len(idx))
        yield counts


def weighted_auroc(truth: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of each replicate (row of `counts`); NaN where a class has no weight.

    Args:
        truth: bool (n,), True for the positive cases.
        score: (n,) the positive-class score.
        counts: (B, n) how often each case is drawn in each replicate.
    """
    truth = np.asarray(truth, bool)
    score = np.asarray(score, np.float64)
    pos, neg = np.flatnonzero(truth), np.flatnonzero(~truth)
    neg = neg[np.argsort(score[neg], kind="stable")]
    neg_sorted = score[neg]
    lo = np.searchsorted(neg_sorted, score[pos], "left")  # negatives scored strictly below
    hi = np.searchsorted(neg_sorted, score[pos], "right")
    cum = np.zeros((len(counts), len(neg) + 1))
    np.cumsum(counts[:, neg], axis=1, out=cum[:, 1:])
    # a positive scores above `lo` negatives and ties with `hi - lo` of them: (cum_lo +
    # cum_hi) / 2 counts the ties one half
    num = np.einsum("bp,bp->b", counts[:, pos], cum[:, lo] + cum[:, hi]) * 0.5
    den = counts[:, pos].sum(axis=1) * cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def replicate_metrics(
    probs: np.ndarray,
    y: np.ndarray,
    pred: np.ndarray,
    counts: np.ndarray,
    positive_class: int = 1,
) -> dict[str, np.ndarray]:
    """Each metric of INTERVAL_METRICS (those a task defines) on every replicate.

    Binary tasks get sensitivity and specificity of the positive class at the predictions'
    threshold; multi-class AUROC is the macro one-vs-rest average, as in `evaluate`.
    """
    y, pred = np.asarray(y), np.asarray(pred)
    correct = (pred == y).astype(np.float64)
    classes = np.unique(y)
    members = (y[:, None] == classes[None, :]).astype(np.float64)  # (n, classes)
    per_class = counts @ (members * correct[:, None]) / members.sum(axis=0)  # one matmul
    recall = {int(c): per_class[:, i] for i, c in enumerate(classes)}
    out = {
        "accuracy": counts @ correct / len(y),
        "balanced_accuracy": per_class.mean(axis=1),
    }
    if probs.shape[1] == 2:
        out["auroc"] = weighted_auroc(y == positive_class, probs[:, positive_class], counts)
        nan = np.full(len(counts), np.nan)
        out["sensitivity"] = recall.get(positive_class, nan)
        out["specificity"] = recall.get(1 - positive_class, nan)
    else:
        per_class = [weighted_auroc(y == c, probs[:, c], counts) for c in classes]
        defined = [a for a in per_class if not np.all(np.isnan(a))]
        if defined:
            out["auroc"] = np.mean(defined, axis=0)
    return out


def interval(values: np.ndarray) -> list[float] | None:
    """The 95% percentile interval [low, high]; None when no replicate defines it."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def intervals(
    variants: Mapping[str, tuple[np.ndarray, np.ndarray]],
    y: np.ndarray,
    *,
    reference: str,
    replicates: int,
    seed: int,
    positive_class: int = 1,
    points: Mapping[str, Mapping[str, Any]] | None = None,
    on_counts: Callable[[np.ndarray], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """`ci95` of every variant and `vs_float32` (paired with `reference`) of the others.

    Args:
        variants: name -> (probabilities (N, C), predictions (N,)) on the test split.
        y: labels of the test split.
        reference: the variant the others are paired with (float32).
        replicates: bootstrap replicates (e.g. 2000).
        seed: seed of the resampling.
        positive_class: the positive class of a binary task.
        points: name -> point metrics (from `evaluate`), for each difference's `diff`.
        on_counts: called with each chunk of case counts, so that other figures (the
            subgroups') are scored on the same replicates without drawing them again.

    Returns:
        name -> {"ci95": {metric: [low, high] | None}, "vs_float32": {metric: {"diff",
        "ci95"}}}; `vs_float32` only for variants other than `reference`.
    """
    samples: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in variants}
    for counts in resample_counts(y, replicates, seed):
        if on_counts is not None:
            on_counts(counts)
        for name, (probs, pred) in variants.items():
            for metric, values in replicate_metrics(probs, y, pred, counts, positive_class).items():
                samples[name].setdefault(metric, []).append(values)
    joined = {
        name: {m: np.concatenate(v) for m, v in by_metric.items()}
        for name, by_metric in samples.items()
    }
    out: dict[str, dict[str, Any]] = {}
    for name, by_metric in joined.items():
        ci95 = {m: interval(by_metric[m]) if m in by_metric else None for m in INTERVAL_METRICS}
        doc: dict[str, Any] = {"ci95": ci95}
        if name != reference:
            doc["vs_float32"] = {}
            for m in PAIRED_METRICS:
                if m not in by_metric or m not in joined[reference]:
                    continue
                mine = (points or {}).get(name, {}).get(m)
                theirs = (points or {}).get(reference, {}).get(m)
                doc["vs_float32"][m] = {
                    "diff": None if mine is None or theirs is None else float(mine - theirs),
                    "ci95": interval(by_metric[m] - joined[reference][m]),
                }
        out[name] = doc
    return out
