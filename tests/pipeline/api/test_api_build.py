"""Whole builds through the Python API (slow): the same numbers as the CLI for the same job,
provenance by sha256, bench and inspect of the result, and the quick-start example."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline import bench, build, inspect
from pipeline.cli import main
from pipeline.data.memory import digest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
JOB = ["--sparsity", "0.5", "--finetune-epochs", "1", "--no-bench", "--seed", "2"]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A trained MLP and WDBC arrays (standardised x, y), also as files; both builds."""
    import keras
    from sklearn.datasets import load_breast_cancer

    from tests import models

    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = models.mlp(n_features=30)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(x, y, epochs=3, verbose=0)
    root = tmp_path_factory.mktemp("job")
    model.save(root / "mlp.keras")
    np.savez(root / "wdbc.npz", x=x, y=y)
    argv = ["build", "--model", str(root / "mlp.keras"), "--data", str(root / "wdbc.npz")]
    assert main([*argv, "--out", str(root / "cli"), "--quiet", *JOB]) == 0
    weights = [w.copy() for w in model.get_weights()]
    report = build(
        model,
        (x, y),
        out=root / "api",
        sparsity=0.5,
        finetune_epochs=1,
        no_bench=True,
        seed=2,
    )
    return {"root": root, "model": model, "weights": weights, "report": report}


def _doc(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def test_the_api_and_the_cli_build_the_same_numbers(job: dict[str, Any]) -> None:
    cli, api = _doc(job["root"] / "cli"), _doc(job["root"] / "api")
    assert api["metrics"] == cli["metrics"]
    assert api["pruning"] == cli["pruning"]
    assert api["quantization"] == cli["quantization"]
    assert api["operating_point"] == cli["operating_point"]
    assert job["report"].to_json()["metrics"] == api["metrics"]  # the returned report is it


def test_the_users_model_is_left_unchanged(job: dict[str, Any]) -> None:
    for before, after in zip(job["weights"], job["model"].get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)


def test_provenance_records_the_in_memory_inputs_by_sha256(job: dict[str, Any]) -> None:
    manifest = json.loads((job["root"] / "api" / "manifest.json").read_text())
    text = json.dumps(manifest)
    inputs = manifest["inputs"]
    assert inputs["model"]["path"] is None
    assert inputs["model"]["sha256"] == digest(job["weights"])
    assert inputs["data"][0]["path"] is None and len(inputs["data"][0]["sha256"]) == 64
    assert "/tmp" not in json.dumps(inputs) and "mlp.keras" not in text


def test_bench_and_inspect_take_the_built_files(job: dict[str, Any]) -> None:
    int8 = job["root"] / "api" / "model_int8.tflite"
    info = inspect(int8)
    assert info.full_integer
    result = bench([job["root"] / "api" / "model_float32.tflite", str(int8)], runs=5, warmup=1)
    assert [m.status for m in result.models] == ["ok", "ok"]
    assert all(m.p50_ms is not None and m.p50_ms > 0 for m in result.models)
    assert result.models[1].path.endswith("model_int8.tflite")
    assert result.to_json()["models"][1]["latency_ms"]["p50"] == result.models[1].p50_ms


def test_the_quickstart_example_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
    assert spec is not None and spec.loader is not None
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    numbers = quickstart.main(tmp_path / "build")
    assert (tmp_path / "build" / "model_int8.tflite").stat().st_size == numbers["int8_bytes"]
    assert 0.5 < numbers["int8_auroc"] <= 1.0


def test_sweep_runs_the_grid(tmp_path: Path) -> None:
    from pipeline import sweep

    summary = sweep(out=tmp_path / "s", grid={"sparsity": [0.0, 0.5]}, no_bench=True)
    assert sorted(p["params"]["sparsity"] for p in summary.points) == [0.0, 0.5]
    assert set(summary.pareto) <= {p["key"] for p in summary.points}
    assert summary.to_json() == json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert (tmp_path / "s" / "sweep.json").is_file()
