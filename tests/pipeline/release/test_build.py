"""End to end: `bedside-lite build` on the embedded default and on users' models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converters.inspection import inspect_tflite
from pipeline.cli import main
from tests import models

VARIANTS = ("float32", "pruned_float32", "int8")


@pytest.fixture(scope="module")
def default_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("default") / "build"
    assert main(["build", "--out", str(out), "--bench-runs", "20"]) == 0
    return out, json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_default_build_writes_every_artifact(default_build: tuple[Path, dict]) -> None:
    out, report = default_build
    for name in (
        "model_float32.tflite",
        "model_pruned_float32.tflite",
        "model_int8.tflite",
        "report.json",
        "preprocessing.json",
    ):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".build.")]
    for variant in VARIANTS:
        art = report["artifacts"][variant]
        assert art["bytes"] == Path(art["path"]).stat().st_size
        assert len(art["sha256"]) == 64


@pytest.mark.slow
def test_default_int8_is_full_integer_read_from_the_file(default_build: tuple[Path, dict]) -> None:
    out, report = default_build
    info = inspect_tflite(out / "model_int8.tflite")
    assert info.full_integer
    assert not info.float_tensors
    assert report["quantization"]["full_integer"] is True
    for side in ("input", "output"):
        q = report["quantization"][side]
        assert q["dtype"] == "int8"
        assert q["scale"] > 0 and -128 <= q["zero_point"] <= 127
    assert report["artifacts"]["int8"]["bytes"] < report["artifacts"]["float32"]["bytes"]
    # the float files really are float: the check is not vacuous
    assert not inspect_tflite(out / "model_float32.tflite").full_integer


@pytest.mark.slow
def test_default_int8_auroc_within_budget(default_build: tuple[Path, dict]) -> None:
    _, report = default_build
    m = report["metrics"]
    assert m["float32"]["auroc"] > 0.95
    assert abs(m["int8"]["auroc"] - m["float32"]["auroc"]) <= 0.02
    assert m["int8"]["agreement"] >= 0.95


@pytest.mark.slow
def test_default_report_keys(default_build: tuple[Path, dict]) -> None:
    _, report = default_build
    assert report["schema_version"] == 1
    p = report["pruning"]
    assert {"threshold", "target_sparsity", "achieved_sparsity", "layers"} <= set(p)
    for layer in p["layers"]:
        assert {"name", "params", "sparsity"} <= set(layer)
    weighted = sum(lay["sparsity"] * lay["params"] for lay in p["layers"]) / sum(
        lay["params"] for lay in p["layers"]
    )
    assert p["achieved_sparsity"] == pytest.approx(weighted)
    for variant in VARIANTS:
        assert {"accuracy", "auroc"} <= set(report["metrics"][variant])
        b = report["bench"][variant]
        assert b["runtime"] and b["threads"] == 1
        lat = b["latency_ms"]
        assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert b["peak_rss_mb"] > 0


@pytest.mark.slow
def test_pruned_weights_really_zero_in_the_float_file(default_build: tuple[Path, dict]) -> None:
    out, report = default_build
    sparsity = inspect_tflite(out / "model_pruned_float32.tflite").weight_sparsity()
    kernels = [s for s in sparsity if s["params"] > 100]
    assert kernels
    zeros = sum(s["sparsity"] * s["params"] for s in kernels)
    total = sum(s["params"] for s in kernels)
    assert zeros / total == pytest.approx(report["pruning"]["achieved_sparsity"], abs=0.02)


@pytest.mark.slow
def test_refuses_non_empty_out_without_overwrite(
    default_build: tuple[Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = default_build
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["build", "--out", str(out), "--no-bench"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def _train_briefly(model, x: np.ndarray, y: np.ndarray, epochs: int = 3) -> None:
    units = model.outputs[0].shape[-1]
    loss = "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss)
    model.fit(
        x, y.astype(np.float32 if units == 1 else np.int64), epochs=epochs, batch_size=64, verbose=0
    )


@pytest.mark.parametrize("kind", ["residual", "conv2d"])
@pytest.mark.slow
def test_build_user_model_on_breastmnist(kind: str, breastmnist_path: Path, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    with np.load(breastmnist_path) as npz:
        x, y = npz["train_images"][..., None].astype(np.float32), npz["train_labels"]
    model = models.BUILDERS[kind]()
    _train_briefly(model, x, y)
    model_path = tmp_path / f"{kind}.keras"
    model.save(model_path)
    out = tmp_path / "out"
    code = main(
        [
            "build",
            "--model",
            str(model_path),
            "--data",
            str(breastmnist_path),
            "--out",
            str(out),
            "--no-bench",
            "--sparsity",
            "0.3",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["quantization"]["full_integer"]
    assert inspect_tflite(out / "model_int8.tflite").full_integer
    assert report["model"]["output_kind"] == ("sigmoid" if kind == "residual" else "softmax")
    assert report["metrics"]["int8"]["agreement"] >= 0.8
    assert report["data"]["splits"]["test"]["samples"] == 156


@pytest.mark.slow
def test_build_user_mlp_on_embedded_data_as_npz(wdbc_npz: Path, tmp_path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    with np.load(wdbc_npz) as npz:
        x, y = npz["x"], npz["y"]
    mean, std = x.mean(axis=0), x.std(axis=0)
    model = models.mlp(units=2)
    _train_briefly(model, (x - mean) / std, y, epochs=20)
    model_path = tmp_path / "mlp.h5"
    model.save(model_path)
    # x/y arrays are split here; the user standardises on the host with scale/offset only
    # per tensor, so store standardised features in the file
    data = tmp_path / "std.npz"
    np.savez(data, x=((x - mean) / std).astype(np.float32), y=y)
    out = tmp_path / "out"
    assert (
        main(
            [
                "build",
                "--model",
                str(model_path),
                "--data",
                str(data),
                "--out",
                str(out),
                "--no-bench",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["float32"]["auroc"] > 0.95
    assert abs(report["metrics"]["int8"]["auroc"] - report["metrics"]["float32"]["auroc"]) < 0.02


def _bench(p50: float, runtime: str = "ai_edge_litert") -> dict:
    return {
        "status": "ok",
        "runtime": runtime,
        "runtime_version": "x",
        "threads": 1,
        "latency_ms": {"p50": p50},
    }


def test_warns_when_int8_is_not_faster() -> None:
    from pipeline.release.warnings import bench_warnings as _warnings

    assert _warnings({"float32": _bench(2.0), "int8": _bench(1.0)}) == []
    slow = _warnings({"float32": _bench(1.0), "int8": _bench(1.5)})
    assert len(slow) == 1 and "1.5 ms int8 vs 1 ms float32" in slow[0]
    legacy = {
        "float32": {**_bench(2.0), "runtime_python": _bench(0.4, "tflite_runtime")},
        "int8": {**_bench(1.0), "runtime_python": _bench(4.3, "tflite_runtime")},
    }
    (warning,) = _warnings(legacy)
    assert "tflite_runtime" in warning and "4.3 ms int8 vs 0.4 ms" in warning
