"""How often a 0.01 AUROC budget is met by chance on BreastMNIST-sized splits.

`--sparsity auto` and the int8 remedy ladder compare one validation AUROC with another and
accept a drop of at most 0.01. On BreastMNIST the validation split holds 78 images (21
malignant) and the test split 156: this script measures how much such a comparison says.

A population of scores stands in for the model: out-of-fold P(malignant) of a logistic
regression on the 780 BreastMNIST images (5-fold cross-validation, pixels standardised).
A "compressed variant" is the same score with fixed per-case noise on the logit, scaled so
that its AUROC on the whole population is exactly `drop` below the reference (a model is
deterministic: each case keeps its noise). Then many validation-sized (and test-sized)
splits are drawn from the population without replacement, stratified, and on each:

- budget met: the observed drop (reference AUROC - variant AUROC) is <= 0.01, which is all
  a point-estimate budget checks;
- non-inferiority shown: the upper bound of the paired 95% bootstrap interval of the drop
  (pipeline/bootstrap.py, as the `noninferiority_auroc` gate) is <= 0.01.

Then the pipeline's own verdict (`pipeline.evaluate.decision.PairedJudge`, AUROC budget
0.01, as `--sparsity auto` and the int8 ladder call it) on 78-, 270- and 1000-case validation
splits drawn i.i.d. (stratified, BreastMNIST's prevalence) from the population: a reference
with fixed logit noise, a truly equal variant (other noise of the same population AUROC) and
a variant truly 0.03 AUROC worse; `--decide point` against `--decide interval` at several
confidences (400 paired replicates, as a build). The goal: the worse variant passes at most
5% of the time at every size.

Run (a few minutes on two cores):

    PYTHONPATH=. python bench/budget_chance.py [--data PATH] [--splits 4000] \
        [--decision-splits 1000] [--json out.json]

The script prints `skipped: ...` and exits 0 when the data file is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.evaluate import bootstrap as bootstrap  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(
    os.environ.get("BEDSIDE_BREASTMNIST", ROOT.parent / "shared" / "data" / "breastmnist.npz")
)
MALIGNANT = 0  # BreastMNIST: 0 = malignant, 1 = normal or benign
BUDGET = 0.01
DROPS = (0.0025, 0.01, 0.02, 0.03, 0.05)  # true (population) AUROC drops of the variant
SIZES = {"val": 78, "test": 156}  # BreastMNIST's split sizes


def population(path: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(truth, score): malignant labels and out-of-fold P(malignant) of all images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with np.load(path) as npz:
        x = np.concatenate([npz[f"{s}_images"] for s in ("train", "val", "test")])
        y = np.concatenate([npz[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    x = x.reshape(len(x), -1).astype(np.float64) / 255.0
    truth = y == MALIGNANT
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    score = cross_val_predict(model, x, truth, cv=folds, method="predict_proba")[:, 1]
    return truth, score


def auroc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, score))


def variant(truth: np.ndarray, score: np.ndarray, drop: float, seed: int) -> np.ndarray:
    """The score with fixed logit noise scaled (bisection) to lose `drop` population AUROC."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=len(score))
    logit = np.log(score / (1 - score))
    target = auroc(truth, score) - drop
    low, high = 0.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if auroc(truth, logit + mid * z) > target:
            low = mid
        else:
            high = mid
    return 1 / (1 + np.exp(-(logit + high * z)))


def split_counts(truth: np.ndarray, size: int, splits: int, seed: int) -> np.ndarray:
    """(splits, N) 0/1 membership of stratified subsamples of `size` cases."""
    rng = np.random.default_rng(seed)
    n_pos = round(size * truth.mean())
    counts = np.zeros((splits, len(truth)), np.int32)
    for idx, k in ((np.flatnonzero(truth), n_pos), (np.flatnonzero(~truth), size - n_pos)):
        chosen = np.argsort(rng.random((splits, len(idx))), axis=1)[:, :k]
        block = np.zeros((splits, len(idx)), np.int32)
        np.put_along_axis(block, chosen, 1, axis=1)
        counts[:, idx] = block
    return counts


def chunked_auroc(truth: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUROC of every split (row of `counts`), 500 splits at a time."""
    chunks = np.array_split(counts, max(1, len(counts) // 500))
    return np.concatenate([bootstrap.weighted_auroc(truth, score, c) for c in chunks])


def noninferiority_shown(
    truth: np.ndarray,
    ref: np.ndarray,
    var: np.ndarray,
    counts: np.ndarray,
    replicates: int,
    seed: int,
) -> float:
    """Fraction of splits whose paired 95% upper bound of the AUROC drop is <= BUDGET."""
    shown = 0
    y = (~truth).astype(np.int64)  # class 0 = malignant, as the pipeline sees BreastMNIST
    for row in counts:
        idx = np.flatnonzero(row)
        yi = y[idx]
        probs = {
            name: np.stack([s[idx], 1 - s[idx]], axis=1) for name, s in (("f", ref), ("v", var))
        }
        pred = {name: (p[:, 0] < 0.5).astype(np.int64) for name, p in probs.items()}
        out = bootstrap.intervals(
            {name: (probs[name], pred[name]) for name in probs},
            yi,
            reference="f",
            replicates=replicates,
            seed=seed,
            positive_class=MALIGNANT,
        )
        low = out["v"]["vs_float32"]["auroc"]["ci95"][0]
        shown += -low <= BUDGET
    return shown / len(counts)


DECISION_SIZES = (78, 270, 1000)
CONFIDENCES = (0.8, 0.9, 0.95, 0.975)


def iid_split(truth: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of an i.i.d. stratified draw of `size` cases from the population."""
    n_pos = round(size * truth.mean())
    pos, neg = np.flatnonzero(truth), np.flatnonzero(~truth)
    return np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, size - n_pos)])


def decision_rates(
    truth: np.ndarray, score: np.ndarray, splits: int, seed: int
) -> list[dict[str, object]]:
    """Pass rates of the equal and the 0.03-worse variant per split size and rule."""
    from pipeline.config.enums import Decide
    from pipeline.evaluate.decision import DecisionRule, PairedJudge

    ref = variant(truth, score, 0.005, seed + 3)
    scenarios = {"equal": variant(truth, score, 0.005, seed + 4)}
    scenarios["worse_0.03"] = variant(truth, score, 0.035, seed + 4)
    rng = np.random.default_rng(seed + 5)
    rows: list[dict[str, object]] = []
    for size in DECISION_SIZES:
        passed = {(name, rule): 0 for name in scenarios for rule in ("point", *CONFIDENCES)}
        for i in range(splits):
            idx = iid_split(truth, size, rng)
            y = (~truth[idx]).astype(np.int64)  # class 0 = malignant, as the pipeline has it

            def probs(s: np.ndarray, idx: np.ndarray = idx) -> np.ndarray:
                return np.stack([s[idx], 1 - s[idx]], axis=1)

            rule = DecisionRule(Decide.INTERVAL, 0.95, seed + i)
            judge = PairedJudge.of_reference(probs(ref), y, MALIGNANT, None, BUDGET, None, rule)
            for name, var in scenarios.items():
                d = judge.judge(probs(var))
                loss = d.loss["auroc"]
                passed[name, "point"] += loss is not None and loss <= BUDGET + 1e-12
                samples = d.replicates["auroc"]
                for c in CONFIDENCES:
                    bound = max(float(np.quantile(samples, c)), loss or 0.0)
                    passed[name, c] += bound <= BUDGET + 1e-12
        for rule in ("point", *CONFIDENCES):
            rows.append(
                {
                    "cases": size,
                    "decide": "point" if rule == "point" else f"interval {rule}",
                    "equal_passes": passed["equal", rule] / splits,
                    "worse_0.03_passes": passed["worse_0.03", rule] / splits,
                }
            )
    return rows


def print_decisions(rows: list[dict[str, object]], splits: int) -> None:
    print(
        f"\n| validation cases | --decide | truly equal variant passes | 0.03 worse passes "
        f"(false pass) |   ({splits} splits each, AUROC budget {BUDGET})"
    )
    print("| ---: | --- | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['cases']} | {r['decide']} | {r['equal_passes']:.1%} | "
            f"{r['worse_0.03_passes']:.1%} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--splits", type=int, default=4000, help="splits per scenario")
    parser.add_argument("--gate-splits", type=int, default=200, help="splits bootstrapped")
    parser.add_argument("--replicates", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decision-splits", type=int, default=1000, help="per size")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (pass --data or set BEDSIDE_BREASTMNIST)")
        return 0
    start = time.perf_counter()
    truth, score = population(args.data, args.seed)
    base = auroc(truth, score)
    print(
        f"population: {len(truth)} BreastMNIST images, {int(truth.sum())} malignant; "
        f"out-of-fold logistic regression AUROC {base:.4f}"
    )
    rows = []
    for name, size in SIZES.items():
        counts = split_counts(truth, size, args.splits, args.seed + 1)
        ref = chunked_auroc(truth, score, counts)
        lo, hi = np.percentile(ref, [5, 95])
        print(
            f"{name}-sized split ({size} cases): reference AUROC over splits "
            f"{ref.mean():.3f} (90% of splits in [{lo:.3f}, {hi:.3f}], sd {ref.std():.3f})"
        )
        for drop in DROPS:
            var = variant(truth, score, drop, args.seed + 2)
            got = chunked_auroc(truth, var, counts)
            observed = ref - got
            met = float(np.mean(observed <= BUDGET + 1e-12))
            shown = noninferiority_shown(
                truth, score, var, counts[: args.gate_splits], args.replicates, args.seed
            )
            q5, q95 = np.percentile(observed, [5, 95])
            rows.append(
                {
                    "split": name,
                    "cases": size,
                    "true_drop": drop,
                    "budget_met": met,
                    "observed_drop_90": [float(q5), float(q95)],
                    "noninferiority_shown": shown,
                }
            )
    print()
    print(
        f"| split | true AUROC drop | budget {BUDGET} met (point estimate) | observed drop, "
        f"90% of splits | non-inferiority at {BUDGET} shown (paired 95% bound) |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        q5, q95 = r["observed_drop_90"]
        print(
            f"| {r['split']} ({r['cases']}) | {r['true_drop']:.4f} | {r['budget_met']:.1%} | "
            f"[{q5:+.3f}, {q95:+.3f}] | {r['noninferiority_shown']:.1%} |"
        )
    decisions = decision_rates(truth, score, args.decision_splits, args.seed)
    print_decisions(decisions, args.decision_splits)
    seconds = time.perf_counter() - start
    print(
        f"\n{args.splits} splits per row ({args.gate_splits} bootstrapped with "
        f"{args.replicates} resamples); {seconds:.0f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "population_auroc": base,
                    "rows": rows,
                    "decisions": decisions,
                    "seconds": seconds,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
