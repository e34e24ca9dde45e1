"""bench/nested.py's choice on validation: the rule never looks at test numbers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bench.nested import select_on_validation

RNG = np.random.default_rng(0)
Y = np.array([0, 1] * 40)


def _run(variant: str, seed: int, val: float, test: float, macs: int, p50: float,
         **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "variant": variant, "train_seed": seed, "val_auroc": val, "test_auroc_int8": test,
        "macs": macs, "p50_ms": p50, "build_seconds": 10.0, "scores": RNG.random(len(Y)),
        **extra,
    }  # fmt: skip


def _model(seed: int, variants: list[tuple[str, float, float, int]]) -> list[dict[str, Any]]:
    runs = [_run("unpruned", seed, 0.90, 0.88, 1000, 0.6, baseline=True)]
    for name, val, test, macs in variants:
        runs.append(_run(name, seed, val, test, macs, macs / 1000))
        runs.append(_run(f"{name}, host", seed, val, test - 0.5, macs, macs / 2000,
                         host_resize=True, host_resize_of=name))  # fmt: skip
    return runs


def test_fewest_macs_within_the_validation_budget_whatever_test_says() -> None:
    # "small" loses 0.02 on validation (out), "mid" 0.005 (in): mid is chosen although
    # "small" and "big" score better on test
    runs = _model(0, [("small", 0.88, 0.95, 100), ("mid", 0.895, 0.70, 200),
                      ("big", 0.91, 0.99, 400)])  # fmt: skip
    picks = select_on_validation(runs, Y, 0.01, samples=50)["picks"]
    assert [p["variant"] for p in picks] == ["mid"]
    pick = picks[0]
    assert pick["within_budget"] is True
    assert pick["delta"] == pytest.approx(0.70 - 0.88)
    assert pick["speedup"] == pytest.approx(0.6 / 0.2)
    assert pick["speedup_host_resize"] == pytest.approx(0.6 / 0.1)  # its own host twin
    assert pick["delta_host_resize"] == pytest.approx(0.20 - 0.88)


def test_none_within_budget_takes_the_best_validation_auroc() -> None:
    runs = _model(3, [("a", 0.80, 0.9, 100), ("b", 0.85, 0.5, 200)])
    pick = select_on_validation(runs, Y, 0.01, samples=50)["picks"][0]
    assert (pick["variant"], pick["within_budget"]) == ("b", False)


def test_one_pick_per_trained_model_and_their_mean() -> None:
    runs = _model(0, [("a", 0.90, 0.86, 100)]) + _model(1, [("a", 0.70, 0.90, 100)])
    result = select_on_validation(runs, Y, 0.01, samples=50)
    assert [p["train_seed"] for p in result["picks"]] == [0, 1]
    assert result["mean"]["delta"] == pytest.approx(np.mean([0.86 - 0.88, 0.90 - 0.88]))
    low, high = result["mean"]["delta_ci95"]
    assert low <= high
