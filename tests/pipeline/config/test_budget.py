"""The validation budgets: one object from the config, one serialiser, and their names
(`--val-max-*`), with the old flags and job keys still read, with a deprecation warning."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

from pipeline.cli import main
from pipeline.cli.options import build_config, job_config
from pipeline.config import BuildConfig, QuantizeConfig, jobfile
from pipeline.config.budget import ValidationBudget, budget_json
from pipeline.errors import ConfigError, DeprecatedOption
from pipeline.evaluate.operating_point import RateBudget
from pipeline.models import OutputKind
from pipeline.prune.auto import AutoSearch
from pipeline.quantize.result import Candidate, QuantizationResult, TriedRecipe
from pipeline.release.warnings import quantization_warnings

# (old flag, new flag, old job key, new job key, the BuildConfig attribute both set)
RENAMED = [
    ("--max-sensitivity-drop", "--val-max-sensitivity-drop", "model", "max_sensitivity_drop",
     "val_max_sensitivity_drop", "evaluation.max_sensitivity_drop"),
    ("--max-specificity-drop", "--val-max-specificity-drop", "model", "max_specificity_drop",
     "val_max_specificity_drop", "evaluation.max_specificity_drop"),
    ("--max-brier-increase", "--val-max-brier-increase", "model", "max_brier_increase",
     "val_max_brier_increase", "evaluation.max_brier_increase"),
    ("--max-auroc-drop", "--val-max-int8-auroc-drop", "quantize", "max_auroc_drop",
     "val_max_auroc_drop", "quantize.max_auroc_drop"),
]  # fmt: skip
IDS = [r[1] for r in RENAMED]


def _get(config: BuildConfig, attr: str) -> float:
    section, name = attr.split(".")
    value: float = getattr(getattr(config, section), name)
    return value


@pytest.mark.parametrize(("old", "new", "section", "old_key", "new_key", "attr"), RENAMED, ids=IDS)
def test_an_old_flag_still_works_and_names_the_new_one(
    old: str, new: str, section: str, old_key: str, new_key: str, attr: str
) -> None:
    with pytest.warns(DeprecatedOption, match=f"{old} is deprecated.*use {new} "):
        config = build_config(["build", old, "0.25"])
    assert _get(config, attr) == 0.25
    assert _get(build_config(["build", new, "0.25"]), attr) == 0.25
    assert _get(build_config(["build"]), attr) != 0.25  # the flag made the difference


@pytest.mark.parametrize(("old", "new", "section", "old_key", "new_key", "attr"), RENAMED, ids=IDS)
def test_an_old_job_key_still_works_and_names_the_new_one(
    tmp_path: Path, old: str, new: str, section: str, old_key: str, new_key: str, attr: str
) -> None:
    job = tmp_path / "job.toml"
    job.write_text(f"[{section}]\n{old_key} = 0.25\n")
    with pytest.warns(DeprecatedOption, match=rf"\[{section}\] {old_key} is deprecated.*"
                      rf"use \[{section}\] {new_key} "):  # fmt: skip
        config = build_config(["build", "--config", str(job)])
    assert _get(config, attr) == 0.25
    # the resolved job is written with the new key
    written = jobfile.job_from_config(config)
    assert written[section][new_key] == 0.25 and old_key not in written[section]
    assert job_config(tomllib.loads(jobfile.dumps(written))) == config
    job.write_text(f"[{section}]\n{old_key} = 0.25\n{new_key} = 0.5\n")
    with pytest.raises(ConfigError, match=f"received both. Keep \\[{section}\\] {new_key}"):
        build_config(["build", "--config", str(job)])


def test_the_budget_is_built_from_the_config_with_one_default_per_field() -> None:
    budget = ValidationBudget.of(BuildConfig())
    assert budget == ValidationBudget(0.02, 0.05, 0.01)
    config = build_config(["build", "--val-max-brier-increase", "1"])
    assert ValidationBudget.of(config).max_brier_increase == 1.0


def test_one_serialiser_writes_the_pruning_and_int8_budgets() -> None:
    budget = ValidationBudget(0.02, 0.05, 0.01)
    reference = {"sensitivity": 0.9, "specificity": 0.8, "brier": 0.1}
    search = AutoSearch((0.5,), 0.01, 0.95, (), 0.5, "r", RateBudget(budget, reference))
    doc = search.to_json()
    assert list(doc) == [
        "grid", "max_prune_drop", "baseline_val_auroc", "max_sensitivity_drop",
        "max_specificity_drop", "max_brier_increase", "baseline_val_sensitivity",
        "baseline_val_specificity", "baseline_val_brier", "curve", "chosen_sparsity", "reason",
    ]  # fmt: skip
    assert doc["max_brier_increase"] == 0.01 and doc["baseline_val_specificity"] == 0.8
    int8 = budget_json(("max_auroc_drop", 0.01), 0.97, budget, reference, prefix="reference")
    assert int8["reference_val_auroc"] == 0.97 and int8["reference_val_brier"] == 0.1
    assert int8["max_sensitivity_drop"] == 0.02
    # rates not judged (no operating point): budgets and references are null, AUROC's kept
    unjudged = budget_json(("max_auroc_drop", 0.01), 0.97, None, None, prefix="reference")
    assert unjudged["max_auroc_drop"] == 0.01 and unjudged["reference_val_auroc"] == 0.97
    assert all(v is None for k, v in unjudged.items() if "auroc" not in k)
    assert AutoSearch((0.5,), 0.01, 0.95, (), 0.5, "r").to_json()["max_sensitivity_drop"] is None


def test_the_cli_prints_a_deprecation_as_one_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["build", "--max-auroc-drop", "-1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0].startswith("warning: --max-auroc-drop is deprecated") and len(err) == 2
    assert err[1] == "error: --val-max-int8-auroc-drop must be >= 0; received -1.0."


def _recipe(name: str, auroc: float, sensitivity: float, meets: bool = False) -> TriedRecipe:
    rates = {"sensitivity": sensitivity, "specificity": 0.8, "brier": 0.1}
    drops = {"sensitivity": 0.9 - sensitivity, "specificity": 0.0, "brier": 0.0}
    return TriedRecipe(name, "none", 200, "int8", auroc, 0.95 - auroc, rates, drops, meets, 900)


def test_a_missed_int8_budget_is_warned_from_the_typed_result() -> None:
    budget = ValidationBudget(0.02, 0.05, 0.01)
    rates = RateBudget(budget, {"sensitivity": 0.9, "specificity": 0.8, "brier": 0.1}, 0.4)
    tried = (_recipe("plain", 0.90, 0.85), _recipe("logits", 0.93, 0.88))
    result = QuantizationResult(
        b"", "none", OutputKind.SIGMOID, Candidate("logits"), None,  # type: ignore[arg-type]
        QuantizeConfig(), 200, {}, 0.95, rates, tried, None,
    )  # fmt: skip
    (warning,) = quantization_warnings(result)
    assert "within 0.01 of the pruned float model (0.9500)" in warning
    assert "sensitivity/specificity within 0.02/0.05 of its 0.900/0.800" in warning
    assert "shipping 'logits' with 0.9300 (sensitivity 0.880, specificity 0.800)" in warning
    met = replace(result, tried=(_recipe("logits", 0.95, 0.9, meets=True),))
    assert quantization_warnings(met) == []
    # an entry of `tried` without judged rates has no rate keys
    unjudged = replace(tried[0], val_rates=None, val_rate_drops=None).to_json()
    assert "val_sensitivity" not in unjudged and list(unjudged)[-2:] == ["meets_budget", "bytes"]
    assert list(tried[0].to_json())[6:8] == ["val_sensitivity", "val_sensitivity_drop"]
