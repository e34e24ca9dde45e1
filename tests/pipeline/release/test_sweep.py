"""`bedside-lite sweep`: grid, Pareto front, recommendation, parallel workers, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError, OutputError
from pipeline.release import sweep, sweep_executor, sweep_points
from tests.pipeline import release_env


def _point(
    key: str, nbytes: int, auroc: float | None, p50: float | None = None, passed: bool = True
) -> dict[str, Any]:
    bench = {"int8": {"status": "ok", "latency_ms": {"p50": p50}}} if p50 is not None else {}
    return {
        "key": key,
        "artifacts": {"int8": {"bytes": nbytes}},
        "metrics": {"int8": {"auroc": auroc}},
        "bench": bench,
        "gates": {"passed": passed},
    }


def test_pareto_front_and_recommendation() -> None:
    points = [
        _point("small", 1000, 0.90, 2.0),
        _point("big_good", 3000, 0.99, 1.0),
        _point("dominated", 3000, 0.95, 1.5),  # big_good is as big, better and faster
        _point("tiny_failing", 500, 0.70, 0.5, passed=False),
        _point("undefined", 400, None, 0.1),
    ]
    assert sweep_points.pareto(points) == ["small", "big_good", "tiny_failing"]
    assert sweep_points.recommend(points, "size")["key"] == "small"
    assert sweep_points.recommend(points, "latency")["key"] == "big_good"
    assert sweep_points.recommend([_point("x", 1, 0.5, passed=False)], "size") is None
    # equal size: the higher AUROC wins
    tie = [_point("a", 1000, 0.91), _point("b", 1000, 0.95)]
    assert sweep_points.recommend(tie, "size")["key"] == "b"


def test_grid_points_and_keys() -> None:
    base = {
        "prune": {"sparsity": "auto", "schedule": "oneshot"},
        "quantize": {"calibration_samples": 200, "activations": "int8", "remedy": True},
        "export": {"out": "a"},
    }
    grid = sweep_points.Grid(sparsity=(0.0, 0.5), calibration_samples=(100, 200))
    points = grid.points(base)
    assert len(points) == 4
    assert {(p["sparsity"], p["calibration_samples"]) for p in points} == {
        (0.0, 100),
        (0.0, 200),
        (0.5, 100),
        (0.5, 200),
    }
    assert all(p["schedule"] == "oneshot" and p["activations"] == "int8" for p in points)
    job = sweep_points.point_job(base, points[0])
    assert job["quantize"]["remedy"] is False and base["quantize"]["remedy"] is True
    versions = {"tensorflow": "1"}
    key = sweep_points.point_key(job, versions)
    moved = {**job, "export": {"out": "elsewhere"}, "gates": {"min_specificity": 0.9}}
    assert sweep_points.point_key(moved, versions) == key  # output and gates do not change results
    assert sweep_points.point_key(sweep_points.point_job(base, points[1]), versions) != key
    assert sweep_points.point_key(job, {"tensorflow": "2"}) != key
    threshold = sweep_points.Grid(threshold=(0.01,)).points(base)
    assert sweep_points.point_job(base, threshold[0])["prune"] == {
        "threshold": 0.01,
        "schedule": "oneshot",
    }
    with pytest.raises(ConfigError, match="either the sparsity or the threshold"):
        sweep_points.Grid(sparsity=(0.5,), threshold=(0.1,))


def test_a_point_key_changes_with_how_points_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """An older sweep's points, made by other rules, are not reused."""
    job = {"prune": {"sparsity": "auto"}}
    key = sweep_points.point_key(job, {})
    monkeypatch.setattr(sweep_points, "POINT_RULES", sweep_points.POINT_RULES + 1)
    assert sweep_points.point_key(job, {}) != key


def test_sweep_refuses_a_directory_that_is_not_a_sweep(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("{}")
    with pytest.raises(OutputError, match="holds no sweep"):
        sweep.check_output_dir(tmp_path)


def test_invalid_point_fails_before_any_point_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    code = main(
        [
            "sweep",
            "--out",
            str(tmp_path / "s"),
            "--sparsity",
            "0.5",
            "--prune-schedule",
            "polynomial",
            "--no-bench",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Sweep point" in err and "--finetune-epochs" in err
    assert not (tmp_path / "s" / sweep.POINTS_DIR).exists() or not any(
        (tmp_path / "s" / sweep.POINTS_DIR).iterdir()
    )


@pytest.mark.slow
def test_sweep_runs_in_workers_then_resumes_without_recomputing(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.release.build

    inputs = tmp_path_factory.getbasetemp() / "release" / "inputs"
    model, data = release_env.tiny_inputs(inputs)
    out = tmp_path_factory.mktemp("sweep") / "s"

    def argv(sparsity: str, workers: int) -> list[str]:
        return [
            "sweep",
            "--model",
            str(model),
            "--data",
            str(data),
            "--out",
            str(out),
            "--sparsity",
            sparsity,
            "--calibration-samples",
            "64",
            "--no-bench",
            "--gate",
            "max_auroc_drop=0.05",
            "--gate",
            "min_specificity=0.5",
            "--quiet",
            "--workers",
            str(workers),
        ]

    first = release_env.run_cli(argv("0,0.5", workers=2))  # spawned worker processes
    assert first.code == 0, first.stderr
    summary = json.loads((out / sweep.SWEEP_JSON).read_text())
    assert [p["params"]["sparsity"] for p in summary["points"]] == [0.0, 0.5]
    files = sorted((out / sweep.POINTS_DIR).glob("*.json"))
    assert len(files) == 2
    for point in summary["points"]:
        assert point["split"] == "val"
        assert point["metrics"]["int8"]["auroc"] > 0.9
        assert {c["name"] for c in point["gates"]["checks"]} == {
            "max_auroc_drop",
            "min_specificity",
        }
    assert set(summary["pareto"]) <= {p["key"] for p in summary["points"]}
    rec = summary["recommended"]
    assert rec is not None and rec["gates_passed"] is True
    confirm = Path(rec["out"])
    assert (confirm / "model_int8.tflite").is_file()
    test_report = json.loads((confirm / "report.json").read_text())
    assert test_report["data"]["splits"]["test"]["samples"] > 0
    assert rec["test"]["auroc"] == test_report["metrics"]["int8"]["auroc"]
    assert test_report["pruning"]["target_sparsity"] == rec["params"]["sparsity"]
    point = next(p for p in summary["points"] if p["key"] == rec["key"])
    # the confirming build ships exactly the file the point measured
    assert point["artifacts"]["int8"]["sha256"] == test_report["artifacts"]["int8"]["sha256"]
    assert "| point |" in (out / sweep.SWEEP_MD).read_text()

    calls: list[str] = []
    real_point, real_build = sweep_executor.evaluate_point, pipeline.release.build.build

    def counted_point(*args: Any, **kwargs: Any) -> Any:
        calls.append("point")
        return real_point(*args, **kwargs)

    def counted_build(*args: Any, **kwargs: Any) -> Any:
        calls.append("build")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(sweep_executor, "evaluate_point", counted_point)
    monkeypatch.setattr(pipeline.release.build, "build", counted_build)
    stamps = {p: p.stat().st_mtime_ns for p in [*files, confirm / "report.json"]}
    second = release_env.run_cli(argv("0,0.5", workers=1))
    assert second.code == 0, second.stderr
    assert calls == []  # nothing recomputed: every point and the confirmation were reused
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / sweep.SWEEP_JSON).read_text())["recommended"]["key"] == rec["key"]

    third = release_env.run_cli(argv("0,0.5,0.7", workers=1))
    assert third.code in (0, 1), third.stderr
    assert calls.count("point") == 1  # only the new point
    assert len(list((out / sweep.POINTS_DIR).glob("*.json"))) == 3
    assert {p: p.stat().st_mtime_ns for p in files} == {p: stamps[p] for p in files}


def test_sweep_takes_every_build_option_but_its_axes() -> None:
    """The sweep parser is derived from the registry: each build option is a flag of `sweep`
    too, except the grid axes and --out (the sweep's own) and --overwrite."""
    from pipeline.cli.parser import make_parser, subcommand_parser

    def flags(command: str) -> dict[str, str]:
        actions = subcommand_parser(make_parser(), command)._actions
        return {a.option_strings[0]: a.dest for a in actions if a.option_strings}

    build, swept = flags("build"), flags("sweep")
    axes = {"--sparsity", "--threshold", "--prune-schedule", "--calibration-samples"}
    axes |= {"--activations"}
    assert set(build) - set(swept) == {"--overwrite"}
    for flag, dest in build.items():
        if flag in axes or flag == "--out":
            assert swept[flag] != dest, flag  # the sweep's own setting, e.g. grid_sparsity
        elif flag != "--overwrite":
            assert swept[flag] == dest, flag


def test_sweep_points_take_the_build_options_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--positive-class` and `--operating-point` reach every point's job and config."""
    from pipeline.cli.options import job_config

    seen: dict[str, Any] = {}

    def run(base_job: Any, grid: Any, options: Any, configure: Any, progress: Any) -> Any:
        seen["job"] = base_job
        seen["points"] = [sweep_points.point_job(base_job, p) for p in grid.points(base_job)]
        return {"points": [], "failed": [], "recommended": None}

    monkeypatch.setattr(sweep, "run", run)
    result = release_env.run_cli(
        ["sweep", "--out", str(tmp_path / "s"), "--sparsity", "0,0.5", "--no-bench",
         "--positive-class", "benign", "--operating-point", "sensitivity=0.9",
         "--max-brier-increase", "0.02", "--quiet"]
    )  # fmt: skip
    assert result.code == 1 and "no sweep point passes" in result.stderr  # nothing ran
    assert len(seen["points"]) == 2
    for job in seen["points"]:
        config = job_config(job)
        assert config.evaluation.positive_class == "benign"
        assert config.evaluation.operating_point == "sensitivity=0.9"
        assert config.evaluation.max_brier_increase == 0.02


@pytest.mark.slow
def test_a_sweep_point_chooses_what_its_build_chooses(tmp_path: Path) -> None:
    """On the embedded default (WDBC, `--sparsity auto`) the point and the confirming build
    of the same job pick the same sparsity and int8 recipe and ship the same int8 file: both
    make their variants through `make_variants`, with the operating point's rate budgets
    (the Brier budget rejects a sparsity the AUROC budget alone would keep)."""
    out = tmp_path / "s"
    result = release_env.run_cli(["sweep", "--out", str(out), "--no-bench", "--quiet"])
    assert result.code in (0, 1), result.stderr
    summary = json.loads((out / sweep.SWEEP_JSON).read_text())
    (point,) = summary["points"]
    assert point["params"]["sparsity"] == "auto"
    rec = summary["recommended"]
    assert rec is not None and rec["key"] == point["key"]
    built = json.loads((Path(rec["out"]) / "report.json").read_text())
    for key in ("target_sparsity", "achieved_sparsity"):
        assert point["pruning"][key] == built["pruning"][key], key
    assert point["quantization"]["recipe"] == built["quantization"]["recipe"]
    assert point["artifacts"]["int8"]["sha256"] == built["artifacts"]["int8"]["sha256"]
