"""`--structured-sparsity auto`: channel fractions are tried from the largest down and the
first within the validation budget is kept; none in budget (or an undefined baseline)
leaves the model without structured pruning, with a reason and a warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.cli.options import build_config
from pipeline.config import STRUCTURED_AUTO_GRID, PruneConfig, StructuredConfig
from pipeline.config.budget import ValidationBudget
from pipeline.errors import ConfigError
from pipeline.models import output_kind
from pipeline.prune import structured
from pipeline.prune.auto import RateJudge
from pipeline.prune.structured import auto as structured_auto
from pipeline.release.warnings import structured_warnings
from tests import models
from tests.pipeline.prune.test_structured import (
    build_on_random_images,
    randomized,
    synthetic_splits,
)

GRID = (0.3, 0.7, 0.5)  # out of order on purpose: the search goes from the largest down


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return randomized("structured_functional")


@pytest.fixture(scope="module")
def params_at_half(model: keras.Model) -> int:
    """Parameters of the model after the structured step at R = 0.5 (no auto)."""
    outcome = structured.prune_structured(
        model,
        synthetic_splits(model),
        output_kind(model),
        StructuredConfig(sparsity=0.5, min_channels=2),
        score=lambda m: 0.5,
    )
    return int(outcome.params_after)


def _search(
    model: keras.Model,
    monkeypatch: pytest.MonkeyPatch,
    score: Any,
    max_prune_drop: float,
    rates: RateJudge | None = None,
) -> tuple[structured.StructuredOutcome, list[float]]:
    """The search over GRID, and the fractions it ran a structured step for."""
    tried: list[float] = []
    step = structured_auto.prune_structured

    def spy(*args: Any, **kwargs: Any) -> structured.StructuredOutcome:
        tried.append(args[3].sparsity)
        return step(*args, **kwargs)

    monkeypatch.setattr(structured_auto, "prune_structured", spy)
    config = StructuredConfig(sparsity="auto", min_channels=2, auto_grid=GRID)
    splits = synthetic_splits(model)
    outcome = structured.search_structured(
        model, splits, output_kind(model), config, max_prune_drop, score=score, rates=rates
    )
    return outcome, tried


# --------------------------------------------------------------------------- the decision


@pytest.mark.slow
def test_the_first_fraction_in_budget_is_kept_and_smaller_ones_are_not_tried(
    model: keras.Model, params_at_half: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1 for the original and every model at least as large as R = 0.5's, else 0.5
    def score(m: keras.Model) -> float:
        return 1.0 if m.count_params() >= params_at_half else 0.5

    outcome, tried = _search(model, monkeypatch, score, max_prune_drop=0.1)
    assert tried == [0.7, 0.5]  # 0.3 is never run
    assert outcome.params_after == params_at_half < outcome.params_before
    auto = outcome.auto
    assert auto is not None and auto.chosen_sparsity == 0.5
    assert [p["sparsity"] for p in auto.curve] == [0.7, 0.5]
    assert [p["within_budget"] for p in auto.curve] == [False, True]
    assert [p["val_auroc"] for p in auto.curve] == [0.5, 1.0]
    assert auto.curve[1]["params_after"] == params_at_half
    doc = json.loads(json.dumps(outcome.to_json()))
    assert doc["target_sparsity"] == 0.5 and doc["method"] == "channel_norm"
    assert doc["auto"]["chosen_sparsity"] == 0.5 and doc["auto"]["grid"] == list(GRID)
    assert doc["auto"]["baseline_val_auroc"] == 1.0
    assert structured_warnings(outcome, PruneConfig(max_prune_drop=0.1)) == []


def test_the_rates_at_the_operating_point_are_judged_as_sparsity_auto_judges_them(
    model: keras.Model, params_at_half: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUROC passes everywhere; the sensitivity of R = 0.7 falls out of its budget."""

    def rates(m: keras.Model) -> dict[str, float | None]:
        ok = m.count_params() >= params_at_half
        return {"sensitivity": 1.0 if ok else 0.5, "specificity": 1.0, "brier": 0.1}

    judge = RateJudge.of_original(model, rates, ValidationBudget(0.02, 0.05, 1.0))
    outcome, tried = _search(model, monkeypatch, lambda m: 0.8, 0.0, judge)
    assert tried == [0.7, 0.5]
    auto = outcome.auto
    assert auto is not None and auto.chosen_sparsity == 0.5
    assert [p["val_sensitivity"] for p in auto.curve] == [0.5, 1.0]
    assert auto.rates is not None and auto.rates.reference["sensitivity"] == 1.0
    assert auto.rates.budget.max_sensitivity_drop == 0.02
    doc = auto.to_json()
    assert (doc["baseline_val_sensitivity"], doc["max_sensitivity_drop"]) == (1.0, 0.02)


def test_a_paired_judge_decides_by_the_bounds_and_names_the_budget_missed(
    model: keras.Model, params_at_half: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R = 0.7 loses validation positives (by its bound too); R = 0.5 keeps the reference's
    probabilities exactly."""
    from pipeline.evaluate.decision import DecisionRule, ModelJudge, PairedJudge

    y = (np.arange(60) % 2).astype(np.int64)
    ref = np.where(y == 1, 0.9, 0.1)

    def probs(m: keras.Model) -> np.ndarray:
        p = ref.copy()
        if m.count_params() < params_at_half:
            p[np.flatnonzero(y == 1)[:6]] = 0.2
        return np.stack([1 - p, p], axis=1)

    budget = ValidationBudget(0.02, 0.05, 1.0)
    paired = PairedJudge.of_reference(probs(model), y, 1, 0.5, 0.1, budget, DecisionRule())
    outcome = structured.search_structured(
        model, synthetic_splits(model), output_kind(model),
        StructuredConfig(sparsity="auto", min_channels=2, auto_grid=GRID), 0.1,
        score=lambda m: 0.8, paired=ModelJudge(probs, paired),
    )  # fmt: skip
    auto = outcome.auto
    assert auto is not None and auto.chosen_sparsity == 0.5
    first, second = auto.curve
    assert first["val_loss_bound"]["sensitivity"] >= 0.2 - 1e-9  # 6 of 30 positives lost
    assert any("--val-max-sensitivity-drop 0.02" in m for m in first["missed"])
    assert second["missed"] == [] and second["val_loss_bound"]["sensitivity"] == 0.0
    doc = auto.to_json()
    assert doc["decide"] == "interval" and doc["min_detectable"]["sensitivity"] > 0


@pytest.mark.slow
def test_no_fraction_in_budget_means_no_structured_pruning(
    model: keras.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    def score(m: keras.Model) -> float:
        return m.count_params() / model.count_params()  # 1 for the original only

    outcome, tried = _search(model, monkeypatch, score, max_prune_drop=0.0)
    assert tried == [0.7, 0.5, 0.3]
    assert outcome.model is model
    doc = json.loads(json.dumps(outcome.to_json()))
    assert doc["method"] == "none" and doc["target_sparsity"] is None
    assert doc["params_after"] == doc["params_before"] == model.count_params()
    assert doc["macs_after"] == doc["macs_before"] and doc["removed_channels"] == 0
    auto = doc["auto"]
    assert auto["chosen_sparsity"] is None
    assert [p["within_budget"] for p in auto["curve"]] == [False, False, False]
    for point in auto["curve"]:  # each R with its validation AUROC
        assert f"{point['sparsity']:g} -> {point['val_auroc']:.4f}" in auto["reason"]
    for fix in ("--max-prune-drop", "--structured-finetune-epochs", "--structured-criterion"):
        assert fix in auto["reason"]
    (warning,) = structured_warnings(outcome, PruneConfig(max_prune_drop=0.0))
    assert "--structured-sparsity auto" in warning and auto["reason"] in warning


def test_an_undefined_baseline_skips_the_search(
    model: keras.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome, tried = _search(model, monkeypatch, lambda m: None, max_prune_drop=1.0)
    assert tried == []
    assert outcome.model is model
    auto = outcome.auto
    assert auto is not None and auto.chosen_sparsity is None and auto.curve == ()
    assert "undefined" in auto.reason and "--structured-sparsity R" in auto.reason


def test_the_grid_is_validated() -> None:
    assert StructuredConfig(sparsity="auto").auto_grid == STRUCTURED_AUTO_GRID
    for grid in ((), (0.5, 1.0), (0.0,)):
        with pytest.raises(ConfigError, match="structured auto grid"):
            StructuredConfig(sparsity="auto", auto_grid=grid)
    with pytest.raises(ConfigError, match="or 'auto'"):
        StructuredConfig(sparsity="autox")


# --------------------------------------------------------------------------- builds


# the untrained model's rates at the operating point move with any change: no rate budget
ANY_RATES = ["--val-max-sensitivity-drop", "1", "--val-max-specificity-drop", "1",
             "--val-max-brier-increase", "1"]  # fmt: skip


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return models.structured_sequential()


@pytest.mark.slow
def test_a_build_with_any_loss_allowed_keeps_the_largest_fraction(tmp_path: Path) -> None:
    flags = ["--structured-sparsity", "auto", "--max-prune-drop", "1", "--sparsity", "0"]
    out = build_on_random_images(tmp_path, _model(), [*flags, *ANY_RATES])
    report = json.loads((out / "report.json").read_text())
    s = report["pruning"]["structured"]
    largest = max(STRUCTURED_AUTO_GRID)
    assert s["auto"]["chosen_sparsity"] == s["target_sparsity"] == largest
    assert [p["sparsity"] for p in s["auto"]["curve"]] == [largest]
    assert s["auto"]["curve"][0]["params_after"] == s["params_after"] < s["params_before"]
    assert not any("structured" in w for w in report["warnings"])
    assert f"structured auto R {largest:g}: validation AUROC" in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_build_whose_budget_no_fraction_meets_ships_unpruned(tmp_path: Path) -> None:
    """Through the job file: an AUROC 1 above the original's cannot be met."""
    job = tmp_path / "job.toml"
    job.write_text('[prune]\nstructured_sparsity = "auto"\nmax_drop = -1.0\nsparsity = 0.0\n')
    out = build_on_random_images(tmp_path, _model(), ["--config", str(job)])
    report = json.loads((out / "report.json").read_text())
    s = report["pruning"]["structured"]
    assert s["method"] == "none" and s["auto"]["chosen_sparsity"] is None
    assert [p["sparsity"] for p in s["auto"]["curve"]] == sorted(STRUCTURED_AUTO_GRID)[::-1]
    assert s["params_after"] == s["params_before"] == report["model"]["parameters"]
    sizes = report["artifacts"]
    assert sizes["pruned_float32"]["bytes"] == pytest.approx(sizes["float32"]["bytes"], rel=0.02)
    assert any(w.startswith("--structured-sparsity auto: no channel") for w in report["warnings"])


# --------------------------------------------------------------------------- CLI and job file


def test_auto_is_accepted_on_the_command_line_and_in_a_job_file(tmp_path: Path) -> None:
    assert build_config(["build", "--structured-sparsity", "auto"]).structured.auto
    job = tmp_path / "job.toml"
    job.write_text('[prune]\nstructured_sparsity = "auto"\n')
    config = build_config(["build", "--config", str(job)]).structured
    assert config.auto and config.enabled and config.sparsity == "auto"
    assert not build_config(["build", "--structured-sparsity", "0.5"]).structured.auto


@pytest.mark.parametrize(
    ("flags", "job", "message"),
    [
        (
            ["--structured-sparsity", "autox"],
            None,
            "expected a number in [0, 1) or 'auto', received 'autox'",
        ),
        (
            [],
            '[prune]\nstructured_sparsity = "autox"\n',
            '[prune] structured_sparsity must be a number in [0, 1) or "auto"; received "autox"',
        ),
        (
            ["--structured-sparsity", "auto", "--structured-threshold", "0.5"],
            None,
            "--structured-sparsity auto and --structured-threshold 0.5",
        ),
        (
            [],
            '[prune]\nstructured_sparsity = "auto"\nstructured_threshold = 0.5\n',
            "at most one of a channel sparsity and a threshold",
        ),
    ],
)
def test_bad_structured_auto_input_exits_2(
    flags: list[str],
    job: str | None,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if job is not None:
        (tmp_path / "job.toml").write_text(job)
        flags = [*flags, "--config", str(tmp_path / "job.toml")]
    assert main(["build", "--out", str(tmp_path / "out"), "--no-bench", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_sweep_runs_the_search_in_every_point(tmp_path: Path) -> None:
    """The sweep takes `[prune] structured_sparsity = "auto"` from its job file; each point
    and the confirming build run the search."""
    from pipeline.release import sweep

    model = _model()
    model.save(tmp_path / "model.keras")
    x = np.random.default_rng(0).uniform(0, 1, (120, *model.inputs[0].shape[1:]))
    x = x.astype("float32")
    np.savez(tmp_path / "data.npz", x=x, y=(x.mean(axis=(1, 2, 3)) > 0.5).astype(np.int64))
    job = tmp_path / "job.toml"
    rates = (
        "val_max_sensitivity_drop = 1.0\nval_max_specificity_drop = 1.0\n"
        "val_max_brier_increase = 1.0"
    )
    job.write_text(f'[model]\n{rates}\n[prune]\nstructured_sparsity = "auto"\nmax_drop = 1.0\n')
    out = tmp_path / "sweep"
    code = main(
        ["sweep", "--config", str(job), "--model", str(tmp_path / "model.keras"),
         "--data", str(tmp_path / "data.npz"), "--out", str(out), "--sparsity", "0",
         "--calibration-samples", "32", "--no-bench", "--quiet"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / sweep.SWEEP_JSON).read_text())
    confirmed = json.loads((Path(summary["recommended"]["out"]) / "report.json").read_text())
    s = confirmed["pruning"]["structured"]
    assert s["auto"]["chosen_sparsity"] == max(STRUCTURED_AUTO_GRID), s["auto"]
    assert s["params_after"] < s["params_before"]


@pytest.mark.parametrize(("sparsity", "flattened"), [(0.0, False), (0.5, True)])
def test_a_nested_model_stays_nested_when_auto_chose_nothing_and_nothing_else_prunes(
    sparsity: float, flattened: bool
) -> None:
    """With threshold pruning off too, nothing is pruned: the model is not even flattened."""
    from pipeline.clock import StageClock
    from pipeline.config import BuildConfig
    from pipeline.prune.stage import prune_stage

    keras.utils.set_random_seed(0)
    model = models.nested_functional()
    config = BuildConfig(
        prune=PruneConfig(target_sparsity=sparsity, max_prune_drop=-1.0),
        structured=StructuredConfig(sparsity="auto", auto_grid=(0.5,)),
    )
    splits = synthetic_splits(model)
    pruned = prune_stage(model, splits, output_kind(model), config, StageClock(lambda _: None))
    assert pruned.structured is not None and pruned.structured.auto is not None
    assert pruned.structured.auto.chosen_sparsity is None
    assert (pruned.flatten is not None) is flattened
    assert pruned.to_json()["structured"]["auto"]["chosen_sparsity"] is None
    assert (pruned.model is model) is not flattened
