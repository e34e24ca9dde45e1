"""`--decide` in whole builds on the embedded WDBC data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_decide_point_keeps_the_point_rule_and_interval_records_bounds(tmp_path: Path) -> None:
    from pipeline.cli import main

    docs = {}
    for decide in ("point", "interval"):
        out = tmp_path / decide
        argv = ["build", "--out", str(out), "--quiet", "--no-bench", "--decide", decide]
        assert main(argv) == 0
        docs[decide] = json.loads((out / "report.json").read_text())
    point = docs["point"]["pruning"]["auto"]
    assert point["decide"] == "point"
    for p in point["curve"]:  # the point rule: the loss, not its bound, against the budget
        assert p["within_budget"] is (point["baseline_val_auroc"] - p["val_auroc"] <= 0.01 + 1e-9
                                      and not p["missed"])  # fmt: skip
    interval = docs["interval"]["pruning"]["auto"]
    assert interval["decide"] == "interval" and interval["decision_confidence"] == 0.95
    assert interval["chosen_sparsity"] > 0  # the default build still prunes
    for p in interval["curve"]:
        bounds = p["val_loss_bound"]
        assert p["within_budget"] is (bounds["auroc"] <= 0.01 + 1e-12 and not p["missed"])
    assert interval["min_detectable"]["sensitivity"] > 0.02  # one of ~42 positives: 0.024
    tried = docs["interval"]["quantization"]["tried"]
    assert tried[-1]["decision"] == "shipped" and tried[-1]["reason"]
    warnings = docs["interval"]["warnings"]
    assert any("can detect" in w and "--val-max-sensitivity-drop 0.02" in w for w in warnings)
