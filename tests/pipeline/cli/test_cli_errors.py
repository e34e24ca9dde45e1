"""Bad input exits 2 with one clear message and no traceback; nothing is left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import models

    path = tmp_path_factory.mktemp("model") / "mlp.keras"
    models.mlp(n_features=30).save(path)
    return path


def test_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        [
            "build",
            "--model",
            str(tmp_path / "nope.keras"),
            "--data",
            str(tmp_path / "d.npz"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2
    assert "does not exist" in err and "nope.keras" in err
    assert not (tmp_path / "o").exists()


def test_corrupt_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    # the data must exist: a missing input is named before what is inside the model file
    np.savez(tmp_path / "d.npz", x=np.zeros((9, 30), np.float32), y=np.arange(9) % 2)
    code, err = _run(
        [
            "build",
            "--model",
            str(bad),
            "--data",
            str(tmp_path / "d.npz"),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "broken.keras" in err


def test_data_shape_mismatch(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "images.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.normal(size=(60, 8, 8)).astype(np.float32), y=np.arange(60) % 2)
    code, err = _run(
        [
            "build",
            "--model",
            str(tiny_model),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--no-bench",
        ],
        capsys,
    )
    assert code == 2
    assert "(8, 8)" in err and "(None, 30)" in err
    assert not (tmp_path / "o").exists()
    assert not list(tmp_path.glob(".o.*"))


def test_pickled_npz_refused(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "pickled.npz"
    np.savez(data, x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    code, err = _run(
        ["build", "--model", str(tiny_model), "--data", str(data), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2 and "pickled" in err


def test_nan_data(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.ones((60, 30), np.float32)
    x[3, 4] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=x, y=np.arange(60) % 2)
    code, err = _run(
        ["build", "--model", str(tiny_model), "--data", str(data), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2 and "NaN" in err


def test_labels_beyond_the_output(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "three.npz"
    np.savez(data, x=np.ones((90, 30), np.float32), y=np.arange(90) % 3)
    code, err = _run(
        ["build", "--model", str(tiny_model), "--data", str(data), "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 2 and "class 2" in err


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--sparsity", "1.5"], "[0, 1)"),
        (["--threshold", "-0.1"], ">= 0"),
        (["--sparsity", "0.5", "--threshold", "0.1"], "not allowed with"),
        (["--no-such-flag"], "unrecognized"),
        (["--calibration-samples", "0"], "calibration-samples"),
    ],
)
def test_bad_flags(flags: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["build", *flags], capsys)
    assert code == 2 and words in err


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    code, err = _run(["build", "--out", str(target)], capsys)
    assert code == 2 and "is a file" in err
