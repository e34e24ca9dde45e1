"""Validation verdicts on paired bootstrap bounds (`--decide`, pipeline/evaluate/decision.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config.budget import ValidationBudget
from pipeline.config.enums import Decide
from pipeline.evaluate.decision import (
    DecisionRule,
    PairedJudge,
    cases_needed,
    detectable_warnings,
    missed_text,
)
from pipeline.quantize.ptq import choose_recipe
from pipeline.quantize.result import TriedRecipe
from pipeline.release.report.tables import auto_point

POSITIVE = 1


def two_columns(p: np.ndarray) -> np.ndarray:
    return np.stack([1 - p, p], axis=1)


def population(n: int = 78, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (a third positive) and a reference's P(positive) of AUROC about 0.85."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(np.int64)
    logit = 1.5 * (2 * y - 1) + rng.normal(size=n)
    return y, 1 / (1 + np.exp(-logit))


def judge_of(y: np.ndarray, ref: np.ndarray, decide: Decide, **kw: object) -> PairedJudge:
    rule = DecisionRule(decide, 0.95, 7)
    return PairedJudge.of_reference(two_columns(ref), y, POSITIVE, None, 0.01, None, rule, **kw)


def lucky_noisy_variant(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """A variant much noisier than the reference whose validation AUROC happens to lose at
    most 0.01: truly worse, lucky on this split."""
    judge = judge_of(y, ref, Decide.POINT)
    for seed in range(500):
        noise = np.random.default_rng(seed).normal(scale=1.0, size=len(y))
        cand = 1 / (1 + np.exp(-(np.log(ref / (1 - ref)) + noise)))
        loss = judge.judge(two_columns(cand)).loss["auroc"]
        if loss is not None and loss <= 0.01:
            return cand
    raise AssertionError("no lucky variant in 500 draws")


def test_a_lucky_worse_variant_passes_point_and_is_refused_by_interval() -> None:
    y, ref = population()
    cand = lucky_noisy_variant(y, ref)
    point = judge_of(y, ref, Decide.POINT).judge(two_columns(cand))
    interval = judge_of(y, ref, Decide.INTERVAL).judge(two_columns(cand))
    assert point.within_budget
    assert not interval.within_budget
    bound = interval.bound["auroc"]
    assert bound is not None and bound > 0.01 >= (interval.loss["auroc"] or 0)
    assert point.bound == interval.bound  # the same replicates; only the rule differs
    assert "AUROC" in interval.missed["auroc"] and "0.01" in interval.missed["auroc"]


def test_an_identical_variant_passes_a_zero_budget() -> None:
    y, ref = population()
    rule = DecisionRule(Decide.INTERVAL, 0.95, 1)
    judge = PairedJudge.of_reference(two_columns(ref), y, POSITIVE, 0.5, 0.0,
                                     ValidationBudget(0.0, 0.0, 0.0), rule)  # fmt: skip
    decision = judge.judge(two_columns(ref.copy()))
    assert decision.within_budget and decision.bound["sensitivity"] == 0.0
    assert set(decision.to_json()["val_loss_bound"]) == {
        "auroc", "sensitivity", "specificity", "brier",
    }  # fmt: skip


def test_bounds_are_deterministic_in_the_seed() -> None:
    y, ref = population()
    cand = lucky_noisy_variant(y, ref)

    def bound(seed: int) -> float | None:
        rule = DecisionRule(Decide.INTERVAL, 0.95, seed)
        judge = PairedJudge.of_reference(two_columns(ref), y, POSITIVE, None, 0.01, None, rule)
        return judge.judge(two_columns(cand)).bound["auroc"]

    assert bound(3) == bound(3)
    assert bound(3) != bound(4)


def flip_positives(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """`p` with the first `k` positives pushed below the 0.5 threshold."""
    out = p.copy()
    out[np.flatnonzero(y == POSITIVE)[:k]] = 0.01
    return out


def test_the_ladder_replaces_plain_only_on_evidence() -> None:
    """None is within budget; the remedy one positive better is noise, the one seven
    positives better is evidence."""
    y = (np.arange(120) % 3 == 0).astype(np.int64)
    ref = np.where(y == POSITIVE, 0.9, 0.1)
    rule = DecisionRule(Decide.INTERVAL, 0.95, 0)
    budget = ValidationBudget(0.02, 0.05, 1.0)
    judge = PairedJudge.of_reference(two_columns(ref), y, POSITIVE, 0.5, 1.0, budget, rule)
    plain, noise, evidence = (
        judge.judge(two_columns(flip_positives(y, ref, k))) for k in (10, 9, 3)
    )
    assert not any(d.within_budget for d in (plain, noise, evidence))

    def tried(name: str) -> TriedRecipe:
        return TriedRecipe(name, "none", 200, "int8", 0.9, 0.0, None, None, False, 1)

    pick, entries = choose_recipe([tried("plain"), tried("noise")], [plain, noise], judge)
    assert pick == 0 and entries[0].decision == "shipped"
    assert "no remedy better than plain beyond the noise" in (entries[0].reason or "")
    assert (entries[1].reason or "").endswith("-- not better than plain beyond the noise")
    assert "--val-max-sensitivity-drop 0.02" in (entries[0].reason or "")
    pick, entries = choose_recipe(
        [tried("plain"), tried("noise"), tried("evidence")], [plain, noise, evidence], judge
    )
    assert pick == 2 and [e.decision for e in entries] == ["passed over", "passed over",
                                                            "shipped"]  # fmt: skip
    point = DecisionRule(Decide.POINT, 0.95, 0)
    judge = PairedJudge.of_reference(two_columns(ref), y, POSITIVE, 0.5, 1.0, budget, point)
    best = [tried("plain"), TriedRecipe("noise", "none", 200, "int8", 0.95, 0.0, None, None,
                                        False, 1)]  # fmt: skip
    assert choose_recipe(best, [plain, noise], judge)[0] == 1  # point: the best AUROC


def test_min_detectable_and_its_warning() -> None:
    y, ref = population(78)
    judge = judge_of(y, ref, Decide.INTERVAL)
    judge.judge(two_columns(lucky_noisy_variant(y, ref)))
    decisions = [judge.judge(two_columns(lucky_noisy_variant(y, ref)))]
    detectable = judge.min_detectable(decisions)
    auroc = detectable["auroc"]
    assert auroc is not None and auroc > 0.01
    assert detectable["sensitivity"] is None  # not judged without an operating point
    warnings = detectable_warnings("--sparsity auto", detectable, {"auroc": 0.01}, 78,
                                   "--max-prune-drop")  # fmt: skip
    assert len(warnings) == 1
    assert "--max-prune-drop 0.01" in warnings[0] and f"{auroc:.4f}" in warnings[0]
    assert f"about {cases_needed(78, auroc, 0.01)} validation cases" in warnings[0]
    assert detectable_warnings("x", detectable, {"auroc": auroc + 0.01}, 78, "f") == []


@pytest.mark.parametrize("decide", [Decide.POINT, Decide.INTERVAL])
def test_a_missed_budget_names_the_budget_value_and_limit(decide: Decide) -> None:
    rule = DecisionRule(decide, 0.9, 0)
    text = missed_text("sensitivity", 0.022, 0.061, 0.02, rule)
    assert "sensitivity drop 0.0220" in text and "--val-max-sensitivity-drop 0.02" in text
    assert ("90% upper bound 0.0610" in text) is (decide is Decide.INTERVAL)
    point = {"sparsity": 0.9, "val_auroc": 0.9, "within_budget": False, "missed": [text]}
    assert text in auto_point(point, "sparsity")


def test_cases_needed_grows_with_the_square_of_the_ratio() -> None:
    assert cases_needed(100, 0.04, 0.02) == 400


def test_the_summary_names_the_budget_plain_int8_missed() -> None:
    from pipeline.release.report.schema import QuantizationInfo
    from pipeline.release.report.summary import _plain_missed

    reason = "validation sensitivity drop 0.0220 (95% upper bound 0.0610) over --val-max-sen"
    reason += "sitivity-drop 0.02"
    q = QuantizationInfo({"tried": [{"decision": "shipped", "reason": reason}]})
    assert "--val-max-sensitivity-drop 0.02" in _plain_missed(q)
    assert "AUROC" not in _plain_missed(q)
    point = QuantizationInfo({"max_auroc_drop": 0.01, "tried": [{"val_auroc_drop": 0.03}]})
    assert _plain_missed(point) == "its validation AUROC budget (drop 0.0300 over 0.01)"


def test_a_multiclass_task_is_judged_on_macro_auroc_alone() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    logits = 2.0 * np.eye(3)[y] + rng.normal(size=(90, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    rule = DecisionRule(Decide.INTERVAL, 0.95, 0)
    budget = ValidationBudget(0.02, 0.05, 0.01)
    judge = PairedJudge.of_reference(probs, y, 1, 0.5, 0.01, budget, rule)
    assert set(judge.limits) == {"auroc"} and judge.threshold is None
    decision = judge.judge(probs)
    assert decision.within_budget and decision.bound["auroc"] == 0.0
    assert decision.rates() == {}
