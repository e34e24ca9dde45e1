"""Operating point, bootstrap intervals, paired differences, flips and calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EvaluationConfig, parse_operating_point
from pipeline.errors import ConfigError
from pipeline.evaluate import bootstrap
from pipeline.evaluate.metrics import calibration, evaluate, flips
from pipeline.evaluate.operating_point import choose_threshold, rates


def _cases(n: int, seed: int = 0, separation: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Labels (about 38% positive, as BreastMNIST/WDBC) and a noisy positive-class score."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.38).astype(np.int64)
    logit = separation * (2 * y - 1) + rng.normal(0, 1.0, n)
    return y, 1 / (1 + np.exp(-logit))


def _probs(p1: np.ndarray) -> np.ndarray:
    return np.stack([1 - p1, p1], axis=1)


def test_weighted_auroc_equals_sklearn_with_case_weights() -> None:
    from sklearn.metrics import roc_auc_score

    y, p = _cases(80)
    p = np.round(p, 1)  # many ties, counted one half
    counts = next(bootstrap.resample_counts(y, 5, seed=3))
    got = bootstrap.weighted_auroc(y == 1, p, counts)
    for row, value in zip(counts, got, strict=True):
        assert value == pytest.approx(roc_auc_score(y, p, sample_weight=row), abs=1e-12)


def test_stratified_replicates_keep_the_class_counts_and_are_seeded() -> None:
    y, _ = _cases(60)
    first = np.concatenate(list(bootstrap.resample_counts(y, 600, seed=1)))
    again = np.concatenate(list(bootstrap.resample_counts(y, 600, seed=1)))
    other = np.concatenate(list(bootstrap.resample_counts(y, 600, seed=2)))
    assert first.shape == (600, 60)
    assert (first[:, y == 1].sum(axis=1) == (y == 1).sum()).all()
    assert (first[:, y == 0].sum(axis=1) == (y == 0).sum()).all()
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def _interval_width(n: int, metric: str) -> tuple[list[float], float]:
    y, p = _cases(n)
    probs = _probs(p)
    point = evaluate(probs, y, decision_threshold=0.5)
    ci = bootstrap.intervals(
        {"float32": (probs, point.predictions)}, y, reference="float32", replicates=1000, seed=0
    )["float32"]["ci95"][metric]
    assert ci[0] <= point[metric] <= ci[1]
    return ci, ci[1] - ci[0]


@pytest.mark.parametrize(
    "metric", ["auroc", "sensitivity", "specificity", "accuracy", "balanced_accuracy"]
)
def test_interval_contains_the_point_estimate_and_shrinks_with_more_cases(metric: str) -> None:
    _, small = _interval_width(120, metric)
    _, large = _interval_width(1200, metric)
    assert 0 < large < 0.6 * small  # ~1/sqrt(10) in theory


def test_paired_interval_is_narrower_than_unpaired_on_correlated_predictions() -> None:
    y, p = _cases(150, seed=4)
    rng = np.random.default_rng(5)
    # a variant that follows float32 closely, as an int8 model does: small independent noise
    q = np.clip(p + rng.normal(0, 0.03, len(p)), 0, 1)
    a, b = _probs(p), _probs(q)
    pa, pb = evaluate(a, y), evaluate(b, y, reference_predictions=evaluate(a, y).predictions)
    out = bootstrap.intervals(
        {"float32": (a, pa.predictions), "int8": (b, pb.predictions)},
        y,
        reference="float32",
        replicates=2000,
        seed=0,
        points={"float32": pa.values, "int8": pb.values},
    )
    for metric in ("auroc", "sensitivity", "specificity"):
        paired = out["int8"]["vs_float32"][metric]
        assert paired["diff"] == pytest.approx(pb[metric] - pa[metric])
        low, high = paired["ci95"]
        assert low <= paired["diff"] <= high
        own = [out[v]["ci95"][metric] for v in ("float32", "int8")]
        # the unpaired interval of a difference of two independent estimates
        unpaired = np.hypot(*(hi - lo for lo, hi in own))
        assert high - low < 0.5 * unpaired, metric
    assert "vs_float32" not in out["float32"]


def test_flips_add_up_to_the_disagreements() -> None:
    y, p = _cases(200, seed=7)
    rng = np.random.default_rng(8)
    q = np.clip(p + rng.normal(0, 0.15, len(p)), 0, 1)
    threshold = 0.45
    ref = evaluate(_probs(p), y, decision_threshold=threshold)
    var = evaluate(
        _probs(q), y, decision_threshold=threshold, reference_predictions=ref.predictions
    )
    doc = flips(y, _probs(p), _probs(q), 1, threshold)
    kinds = ("positive_missed", "positive_found", "negative_flagged", "negative_cleared")
    total = sum(doc[k] for k in kinds)
    assert total > 0
    assert total == round((1 - var["agreement"]) * len(y))
    assert len(doc["cases"]) == total
    # sensitivity moves by exactly (found - missed) positives
    positives = int((y == 1).sum())
    moved = (doc["positive_found"] - doc["positive_missed"]) / positives
    assert var["sensitivity"] - ref["sensitivity"] == pytest.approx(moved)
    first = doc["cases"][: doc["positive_missed"]]
    assert all(c["label"] == 1 and c["float32"] >= threshold > c["variant"] for c in first)
    assert flips(y, _probs(p), _probs(p), 1, threshold)["cases"] == []


def test_calibration_by_hand_and_for_a_calibrated_model() -> None:
    # two bins used: p=0.1 (observed 0 of 2 positive) and p=0.9 (observed 1 of 2)
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 0, 1, 0])
    doc = calibration(_probs(p), y)
    assert doc["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)
    assert doc["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert doc["reliability"]["count"] == [2, 2]
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    calibrated = calibration(_probs(p), (rng.random(20000) < p).astype(int))
    overconfident = calibration(_probs(np.where(p > 0.5, 1.0, 0.0)), (rng.random(20000) < p))
    assert calibrated["ece"] < 0.02 < overconfident["ece"]


@pytest.mark.parametrize(
    "rule", [("sensitivity", 0.95), ("sensitivity", 0.8), ("specificity", 0.9), ("youden", None)]
)
def test_operating_point_reaches_its_target_on_validation(rule: tuple) -> None:
    y, p = _cases(100, seed=11)
    truth = y == 1
    t = choose_threshold(truth, p, rule)
    got = rates(truth, p, t)
    name, target = rule
    if name == "sensitivity":
        assert got["sensitivity"] >= target
        # the highest such threshold: the next positive case above it would be lost
        assert rates(truth, p, np.min(p[truth & (p >= t)]) + 1e-9)["sensitivity"] < target
    elif name == "specificity":
        assert got["specificity"] >= target
        assert rates(truth, p, np.max(p[~truth & (p < t)]) - 1e-9)["specificity"] < target
    else:
        youden = [sum(rates(truth, p, c).values()) - 1 for c in np.unique(p)]
        assert sum(got.values()) - 1 == pytest.approx(max(youden))
    assert not np.any(np.isclose(p, t, atol=1e-9))  # halfway between cases, not on one


def test_operating_point_rules_and_the_decision_threshold_synonym() -> None:
    assert parse_operating_point("sensitivity=0.95") == ("sensitivity", 0.95)
    assert parse_operating_point("youden") == ("youden", None)
    assert EvaluationConfig(operating_point="threshold=0.3").decision_threshold == 0.3
    same = EvaluationConfig(decision_threshold=0.3, operating_point="threshold=0.3")
    assert same.rule == ("threshold", 0.3)
    assert EvaluationConfig(decision_threshold=0.3).rule == ("threshold", 0.3)
    for bad in ("sensitivity", "youden=1", "recall=0.9", "sensitivity=0", "threshold=2"):
        with pytest.raises(ConfigError, match="--operating-point"):
            EvaluationConfig(operating_point=bad)
    with pytest.raises(ConfigError, match="conflicts"):
        EvaluationConfig(decision_threshold=0.3, operating_point="threshold=0.4")
    with pytest.raises(ConfigError, match="conflicts"):
        EvaluationConfig(decision_threshold=0.3, operating_point="youden")
    with pytest.raises(ConfigError, match="--bootstrap"):
        EvaluationConfig(bootstrap=10)


def _report_of(y: np.ndarray, variants: dict[str, np.ndarray], replicates: int) -> dict:
    """The `metrics` block a build writes, from positive-class scores per variant."""
    metrics, scored, reference = {}, {}, None
    for name, p in variants.items():
        m = evaluate(_probs(p), y, reference_predictions=reference)
        reference = m.predictions if reference is None else reference
        metrics[name], scored[name] = m.values, (_probs(p), m.predictions)
    cis = bootstrap.intervals(
        scored, y, reference="float32", replicates=replicates, seed=0, points=metrics
    )
    for name, doc in cis.items():
        metrics[name].update(doc)
    return {"metrics": metrics, "artifacts": {}, "bench": {}}


def test_noninferiority_gates_read_the_paired_upper_bound() -> None:
    from pipeline.config import GatesConfig
    from pipeline.release.gates import evaluate_limits

    y, p = _cases(400, seed=21, separation=1.5)
    # an int8 output that saturates to a few levels: ties cost AUROC, as in a broken PTQ
    q = np.clip(np.round(p * 2) / 2, 0, 1)
    report = _report_of(y, {"float32": p, "int8": q}, replicates=1000)
    drop = report["metrics"]["float32"]["auroc"] - report["metrics"]["int8"]["auroc"]
    assert 0.04 < drop < 0.1
    low, high = report["metrics"]["int8"]["vs_float32"]["auroc"]["ci95"]
    assert high < 0  # clearly worse, and the paired interval knows it

    def checks(**margins: float) -> dict[str, dict]:
        found = evaluate_limits(report, GatesConfig(**margins))
        return {c.name: c for c in found}

    tight = checks(noninferiority_auroc=0.001)["noninferiority_auroc"]
    assert not tight.passed and tight.measured == pytest.approx(-low)
    assert checks(noninferiority_auroc=0.5)["noninferiority_auroc"].passed
    sens = checks(noninferiority_sensitivity=0.5)["noninferiority_sensitivity"]
    assert sens.passed and sens.measured is not None
    del report["metrics"]["int8"]["vs_float32"]  # --bootstrap 0: nothing to judge
    unmeasured = checks(noninferiority_auroc=0.5)["noninferiority_auroc"]
    assert not unmeasured.passed and "--bootstrap 0" in unmeasured.detail


@pytest.mark.slow
def test_build_at_a_sensitivity_operating_point(tmp_path_factory: pytest.TempPathFactory) -> None:
    import json

    from tests.pipeline import release_env

    root = tmp_path_factory.getbasetemp() / "release"  # shares the tiny model with others
    model, data = release_env.tiny_inputs(root / "inputs")
    out = tmp_path_factory.mktemp("clinical") / "build"
    run = release_env.run_cli(
        [
            "build",
            *("--model", str(model), "--data", str(data), "--out", str(out)),
            *("--operating-point", "sensitivity=0.97", "--bootstrap", "500", "--no-bench"),
            *("--gate", "noninferiority_auroc=0.5", "--gate", "noninferiority_sensitivity=-0.01"),
        ]
    )
    assert run.code == 1, run.stderr  # the negative margin cannot be met: exit 1, report kept
    assert "noninferiority_sensitivity" in run.stderr
    report = json.loads((out / "report.json").read_text())
    op = report["operating_point"]
    assert op["rule"] == "sensitivity=0.97" and op["chosen_on"] == "validation"
    assert op["validation"]["sensitivity"] >= 0.97
    threshold = op["threshold"]
    classes = json.loads((out / "preprocessing.json").read_text())["classes"]
    assert classes["decision_threshold"] == threshold
    n = report["metrics"]["float32"]["samples"]
    for variant, m in report["metrics"].items():
        assert m["decision_threshold"] == threshold
        for metric in ("auroc", "sensitivity", "specificity", "accuracy", "balanced_accuracy"):
            low, high = m["ci95"][metric]
            assert low <= m[metric] <= high, (variant, metric)
        assert 0 <= m["calibration"]["ece"] <= 1 and 0 <= m["calibration"]["brier"] <= 1
        f = m["flips"]
        changed = sum(f[k] for k in ("positive_missed", "positive_found"))
        changed += sum(f[k] for k in ("negative_flagged", "negative_cleared"))
        agreement = 1.0 if m["agreement"] is None else m["agreement"]
        assert changed == round((1 - agreement) * n) == len(f["cases"])
        if variant != "float32":
            assert set(m["vs_float32"]) == {"auroc", "sensitivity", "specificity"}
    auto = report["pruning"]["auto"]
    assert (auto["max_sensitivity_drop"], auto["max_specificity_drop"]) == (0.02, 0.05)
    assert auto["max_brier_increase"] == 0.01
    for rate in ("sensitivity", "specificity", "brier"):
        assert auto[f"baseline_val_{rate}"] == pytest.approx(op["validation"][rate], abs=1e-4)
    limits = {"auroc": 0.01, "sensitivity": 0.02, "specificity": 0.05, "brier": 0.01}
    for point in auto["curve"]:  # --decide interval: the upper bounds of the losses judge
        bound = point["val_loss_bound"]
        assert point["within_budget"] == all(bound[k] <= v + 1e-12 for k, v in limits.items())
        worse = auto["baseline_val_sensitivity"] - point["val_sensitivity"]
        assert bound["sensitivity"] >= worse - 1e-12  # a bound is never below the point loss
    tried = report["quantization"]["tried"]
    assert all("val_sensitivity" in t and "val_specificity_drop" in t for t in tried)
    gates = {c["name"]: c for c in report["gates"]["checks"]}
    assert gates["noninferiority_auroc"]["passed"]
    assert not gates["noninferiority_sensitivity"]["passed"]
    text = (out / "report.md").read_text()
    assert "operating point: sensitivity=0.97" in text
    int8 = report["metrics"]["int8"]
    lo, hi = int8["ci95"]["sensitivity"]
    assert f"{int8['sensitivity']:.3f} [{lo:.2f}, {hi:.2f}]" in text


def test_a_rule_on_a_multiclass_model_is_exit_2(tmp_path: Path) -> None:
    from tests import models
    from tests.pipeline import release_env

    rng = np.random.default_rng(0)
    data = tmp_path / "three.npz"
    np.savez(data, x=rng.normal(size=(150, 30)).astype(np.float32), y=np.arange(150) % 3)
    model = tmp_path / "three.keras"
    models.mlp(units=3).save(model)
    out = tmp_path / "out"
    run = release_env.run_cli(
        ["build", "--model", str(model), "--data", str(data), "--out", str(out)]
        + ["--operating-point", "youden", "--no-bench", "--quiet"]
    )
    assert run.code == 2
    assert "binary task" in run.stderr and "3 classes" in run.stderr
    assert "Traceback" not in run.stderr and not out.exists()


def test_conflicting_threshold_flags_are_exit_2(tmp_path: Path) -> None:
    from tests.pipeline import release_env

    run = release_env.run_cli(
        ["build", "--out", str(tmp_path / "o"), "--decision-threshold", "0.3"]
        + ["--operating-point", "sensitivity=0.9"]
    )
    assert run.code == 2 and "conflicts" in run.stderr and "synonym" in run.stderr


def test_rate_budget_judges_sensitivity_specificity_and_brier() -> None:
    from pipeline.config.budget import ValidationBudget
    from pipeline.evaluate.operating_point import RateBudget

    ref = {"sensitivity": 0.95, "specificity": 0.90, "brier": 0.03}
    budget = RateBudget(ValidationBudget(0.02, 0.05, 0.01), ref, threshold=0.4)
    assert budget.meets({"sensitivity": 0.95, "specificity": 0.86, "brier": 0.039})
    assert not budget.meets({"sensitivity": 0.92, "specificity": 0.90, "brier": 0.03})
    assert not budget.meets({"sensitivity": 1.0, "specificity": 0.84, "brier": 0.03})
    assert not budget.meets({"sensitivity": 1.0, "specificity": 0.9, "brier": 0.05})
    assert not budget.meets({"sensitivity": None, "specificity": 0.9, "brier": 0.03})
    drops = budget.drops({"sensitivity": 0.90, "specificity": 0.95, "brier": 0.05})
    assert drops == pytest.approx({"sensitivity": 0.05, "specificity": -0.05, "brier": 0.02})
    assert "--val-max-brier-increase 0.01" in budget.text()
