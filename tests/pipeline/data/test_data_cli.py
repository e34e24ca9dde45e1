"""Data and metrics through `pipeline.cli.main`: bad data exits 2 with a message, a build on
an image folder reports clinical metrics for every variant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.data.preprocessing import Preprocessing

FAST = ["--no-bench", "--sparsity", "0.5", "--no-remedy"]


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models import conv2d

    model = conv2d((16, 16, 1), units=2)
    path = tmp_path_factory.mktemp("model") / "conv.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def mlp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.models import mlp

    path = tmp_path_factory.mktemp("model") / "mlp.keras"
    mlp(n_features=2).save(path)
    return path


def _pillow() -> Any:
    return pytest.importorskip("PIL.Image", reason="image folders need Pillow")


def _folder(root: Path, per_class: int = 10) -> Path:
    Image = _pillow()
    rng = np.random.default_rng(0)
    for cls, level in (("benign", 60), ("malignant", 180)):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 30, (20, 18)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--data", "medmnist:nosuchmnist"], "Unknown MedMNIST dataset"),
        (["--scale", "2", "--mean", "0.5"], "either --scale/--offset or --mean/--std"),
        (["--decision-threshold", "1.5"], "--decision-threshold must be a probability"),
        (["--window-center", "40"], "both --window-center C and --window-width W"),
        (["--resize", "big"], "expected HxW"),
    ],
)
def test_bad_flags_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], match: str
) -> None:
    code, err = _run(["build", "--out", str(tmp_path / "out"), *FAST, *extra], capsys)
    assert code == 2
    assert match in err and "Traceback" not in err


def test_unreadable_image_exits_2(
    tmp_path: Path, conv_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder(tmp_path / "imgs")
    (root / "malignant" / "scan_07.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    code, err = _run(
        ["build", "--model", str(conv_model), "--data", str(root), "--out", str(out), *FAST], capsys
    )
    assert code == 2
    assert "scan_07.png" in err and "could not be read" in err
    assert "Traceback" not in err
    assert not (out / "report.json").exists()


def test_csv_with_nan_exits_2(
    tmp_path: Path, mlp_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [f"{i},{i / 2},{i % 2}" for i in range(30)]
    rows[12] = "12,nan,0"
    (tmp_path / "t.csv").write_text("a,b,label\n" + "\n".join(rows) + "\n")
    code, err = _run(
        [
            "build",
            "--model",
            str(mlp_model),
            "--data",
            str(tmp_path / "t.csv"),
            "--out",
            str(tmp_path / "out"),
            *FAST,
        ],
        capsys,
    )
    assert code == 2
    assert "t.csv' line 14, column 'b' is nan" in err


def test_unlabelled_data_folder_exits_2(
    tmp_path: Path, conv_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image = _pillow()
    for i in range(4):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / f"{i}.png")
    code, err = _run(
        [
            "build",
            "--model",
            str(conv_model),
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "out"),
            *FAST,
        ],
        capsys,
    )
    assert code == 2
    assert "--calibration-data" in err


@pytest.mark.slow
def test_image_folder_build_reports_clinical_metrics(
    tmp_path: Path, conv_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Image = _pillow()
    labelled = _folder(tmp_path / "imgs")
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):
        Image.fromarray(np.full((30, 30), 20 * i, np.uint8)).save(calib / f"c{i}.png")
    out = tmp_path / "out"
    code, err = _run(
        [
            "build",
            "--model",
            str(conv_model),
            "--data",
            str(labelled),
            "--calibration-data",
            str(calib),
            "--positive-class",
            "malignant",
            "--decision-threshold",
            "0.4",
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())

    assert set(report["metrics"]) >= {"float32", "pruned_float32", "int8"}
    for variant, m in report["metrics"].items():
        for key in (
            "accuracy",
            "balanced_accuracy",
            "auroc",
            "sensitivity",
            "specificity",
            "ppv",
            "npv",
            "per_class_recall",
            "confusion_matrix",
            "agreement",
        ):
            assert key in m, (variant, key)
        assert m["positive_class"] == 1 and m["positive_class_name"] == "malignant"
        assert m["decision_threshold"] == 0.4
        assert np.sum(m["confusion_matrix"]) == m["samples"] == 4
    assert report["metrics"]["float32"]["agreement"] is None
    assert 0.0 <= report["metrics"]["int8"]["agreement"] <= 1.0

    d = report["data"]
    assert d["class_names"] == ["benign", "malignant"]
    assert d["input_shape"] == [16, 16, 1]
    assert d["calibration"] == {"source": str(calib), "samples": 8}
    assert report["quantization"]["calibration_label_counts"] is None
    assert report["quantization"]["calibration_samples"] == 8

    doc = json.loads((out / "preprocessing.json").read_text())
    assert doc["preprocessing"] == d["preprocessing"]
    spec = Preprocessing.from_json(doc["preprocessing"])
    raw = np.asarray(Image.open(labelled / "benign" / "0.png"), np.float32)[None]
    assert spec.apply(raw).shape == (1, 16, 16, 1)  # resized 20x18 -> 16x16, channel added
    assert doc["classes"] == {
        "names": ["benign", "malignant"],
        "positive_class": 1,
        "decision_threshold": 0.4,
    }


@pytest.mark.slow
def test_tabular_csv_build_with_named_classes(
    tmp_path: Path, mlp_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No Pillow needed: the CI path for report.json metrics."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        label = "malignant" if i % 2 else "benign"
        rows.append(f"{rng.normal(i % 2, 0.5):.4f},{rng.normal(0, 1):.4f},{label}")
    (tmp_path / "cases.csv").write_text("radius,texture,diagnosis\n" + "\n".join(rows) + "\n")
    (tmp_path / "calib.csv").write_text("radius,texture\n0.1,0.2\n0.9,-0.3\n0.5,0.0\n")
    out = tmp_path / "out"
    code, err = _run(
        [
            "build",
            "--model",
            str(mlp_model),
            "--data",
            str(tmp_path / "cases.csv"),
            "--label-column",
            "diagnosis",
            "--positive-class",
            "malignant",
            "--calibration-data",
            str(tmp_path / "calib.csv"),
            "--mean",
            "0.5,0",
            "--std",
            "0.5,1",
            "--decision-threshold",
            "0.3",
            "--out",
            str(out),
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert set(report["metrics"]) >= {"float32", "pruned_float32", "int8"}
    for m in report["metrics"].values():
        assert m["class_names"] == ["benign", "malignant"]
        assert (m["positive_class"], m["decision_threshold"]) == (1, 0.3)
        cm = np.array(m["confusion_matrix"])
        assert cm.sum() == m["samples"] == 8
        tp, fn, fp, tn = cm[1, 1], cm[1, 0], cm[0, 1], cm[0, 0]
        assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (tp, fn, fp, tn)
        if tp + fn:
            assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
        if tn + fp:
            assert m["specificity"] == pytest.approx(tn / (tn + fp))
        assert m["per_class_recall"][1] == m["sensitivity"]
        assert m["accuracy"] == pytest.approx((tp + tn) / 8)
    d = report["data"]
    assert d["details"]["features"] == ["radius", "texture"]
    assert d["calibration"] == {"source": str(tmp_path / "calib.csv"), "samples": 3}
    assert report["quantization"]["calibration_label_counts"] is None
    spec = d["preprocessing"]
    assert spec["kind"] == "standardize"
    assert spec["standardize"] == {
        "formula": "model_input = (raw - mean) / std",
        "mean": [0.5, 0.0],
        "std": [0.5, 1.0],
    }
