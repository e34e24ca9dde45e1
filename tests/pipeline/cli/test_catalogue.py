"""The bad-input catalogue (docs/how-to/troubleshooting.md): each case through the CLI, exit 2 (130
for an interrupt), one clear message, no traceback, and no partial artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import keras

    from tests import models

    root = tmp_path_factory.mktemp("catalogue")
    good = root / "mlp.keras"
    models.mlp().save(good)
    lam = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(4),
            keras.layers.Lambda(lambda t: t * 2.0),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    lam.save(root / "lambda.keras")
    a, b = keras.Input((30,)), keras.Input((5,))
    two = keras.Model([a, b], keras.layers.Dense(1)(keras.layers.Concatenate()([a, b])))
    two.save(root / "two_inputs.keras")
    rng = np.random.default_rng(0)
    np.savez(root / "good.npz", x=rng.normal(size=(90, 30)).astype(np.float32), y=np.arange(90) % 2)
    (root / "truncated.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 40)
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04" + b"\x01" * 60)
    (root / "empty_dir").mkdir()
    inf = rng.normal(size=(90, 30)).astype(np.float32)
    inf[5, 5] = np.inf
    np.savez(root / "inf.npz", x=inf, y=np.arange(90) % 2)
    np.savez(root / "empty.npz", x=np.zeros((0, 30), np.float32), y=np.zeros((0,), np.int64))
    tflite = Path(__file__).resolve().parents[2] / "device_bench" / "models" / "dense_int8.tflite"
    data = tflite.read_bytes()
    (root / "truncated.tflite").write_bytes(data[: len(data) // 2])
    return {p.stem if p.is_file() else p.name: p for p in root.iterdir()}


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _build(
    files: dict[str, Path], out: Path, model: str = "mlp", data: str = "good", *extra: str
) -> list[str]:
    return [
        "build",
        "--model",
        str(files[model]),
        "--data",
        str(files[data]),
        "--out",
        str(out),
        "--no-bench",
        "--sparsity",
        "0.5",
        *extra,
    ]


@pytest.mark.parametrize(
    "model, data, words",
    [
        ("empty_dir", "good", "without saved_model.pb"),
        ("truncated", "good", "truncated.h5"),
        ("mlp", "corrupt", "not a readable .npz"),
        ("lambda", "good", "--unsafe-load"),
        ("two_inputs", "good", "exactly one input and one output"),
        ("mlp", "inf", "NaN or Inf"),
        ("mlp", "empty", "empty"),
        ("mlp", "empty_dir", "empty_dir"),
    ],
)
def test_bad_input_exits_2(
    model: str,
    data: str,
    words: str,
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    code, err = _cli(_build(files, out, model, data), capsys)
    assert code == 2
    assert words in err
    assert err.strip().startswith("error:") and err.count("error:") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_augmenting_a_tabular_model_exits_2(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    flags = ["--structured-sparsity", "0.5", "--structured-finetune-epochs", "1",
             "--structured-augment", "hflip"]  # fmt: skip
    code, err = _cli(_build(files, out, "mlp", "good", *flags), capsys)
    assert code == 2
    assert "transforms images" in err and "shape (N, H, W, C)" in err
    assert err.strip().startswith("error:") and err.count("error:") == 1
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.slow
def test_unsafe_load_builds_a_lambda_model(files: dict[str, Path], tmp_path: Path) -> None:
    assert main(_build(files, tmp_path / "out", "lambda", "good", "--unsafe-load")) == 0
    assert (tmp_path / "out" / "model_int8.tflite").is_file()


def test_truncated_tflite_is_refused_by_inspect(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _cli(["inspect", str(files["truncated"].with_suffix(".tflite"))], capsys)
    assert code == 2 and "truncated.tflite" in err


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from pipeline.errors import ModelError

    with pytest.raises(ModelError):
        main(
            [
                "--debug",
                "build",
                "--model",
                str(tmp_path / "missing.keras"),
                "--data",
                str(tmp_path / "d.npz"),
            ]
        )


@pytest.mark.parametrize("missing", ["model", "data", "calibration"])
def test_a_missing_input_is_named_before_a_non_empty_out(
    missing: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several inputs wrong at once: the most fundamental (a missing input) is named first."""
    out = tmp_path / "build"
    out.mkdir()
    (out / "report.json").write_text("{}")
    argv = _build(files, out)
    if missing == "calibration":
        argv += ["--calibration-data", str(tmp_path / "calib.npz")]
    else:
        argv[argv.index(f"--{missing}") + 1] = str(tmp_path / f"missing.{missing}")
    code, err = _cli(argv, capsys)
    assert code == 2
    assert "does not exist" in err and "--overwrite" not in err
    assert (out / "report.json").read_text() == "{}"


@pytest.mark.slow
def test_ctrl_c_leaves_the_previous_output_untouched(
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    assert main(_build(files, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    from pipeline.quantize import ptq as quantization

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(quantization, "quantize", interrupted)
    capsys.readouterr()
    code, err = _cli(_build(files, out, "mlp", "good", "--overwrite"), capsys)
    assert code == 130 and "interrupted" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
