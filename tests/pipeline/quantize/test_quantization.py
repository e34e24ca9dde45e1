"""The int8 stage: stratified calibration, proof from the file, remedies, verification."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.errors import QuantizationError
from converters.inspection import inspect_tflite
from pipeline.cli import main
from pipeline.config import RuntimeTarget
from pipeline.quantize.ptq import calibration_indices


def test_calibration_is_stratified_and_deterministic() -> None:
    y = np.array([0] * 30 + [1] * 60 + [2] * 10)
    idx = calibration_indices(y, 20, seed=3)
    assert len(idx) == 20 and len(set(idx)) == 20
    assert np.bincount(y[idx]).tolist() == [6, 12, 2]
    assert np.array_equal(idx, calibration_indices(y, 20, seed=3))
    assert not np.array_equal(idx, calibration_indices(y, 20, seed=4))
    assert np.array_equal(calibration_indices(y, 500, seed=0), np.arange(100))


def test_rare_class_still_sampled() -> None:
    y = np.array([0] * 92 + [1] * 8)
    idx = calibration_indices(y, 30, seed=0)  # shares 27.6 and 2.4: largest remainders
    assert np.bincount(y[idx]).tolist() == [28, 2]


def _sin_model():
    import keras

    class Sin(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x)

    return keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(4, name="pre"),
            Sin(),
            keras.layers.Dense(1, activation="sigmoid", name="head"),
        ]
    )


def test_float_op_left_by_the_converter_is_caught() -> None:
    """TFLITE_BUILTINS_INT8 does not stop the converter from keeping SIN in float."""
    from pipeline.config import DataConfig, QuantizeConfig
    from pipeline.data import dataset as data
    from pipeline.models import OutputKind
    from pipeline.quantize.ptq import quantize

    splits = data.load(DataConfig())
    with pytest.raises(QuantizationError, match=r"not full-integer.*op #\d+ SIN"):
        quantize(_sin_model(), splits, QuantizeConfig(), OutputKind.SIGMOID, None)


def _confident_cnn(path: Path, breastmnist: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    with np.load(breastmnist) as d:
        x, y = d["train_images"][..., None].astype("float32"), d["train_labels"]
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (16, 32):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(32, activation="relu")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    model.fit(x, y.astype("float32"), epochs=25, batch_size=32, verbose=0)
    model.save(path)
    return path


@pytest.fixture(scope="module")
def confident(tmp_path_factory: pytest.TempPathFactory, breastmnist_path: Path) -> Path:
    return _confident_cnn(tmp_path_factory.mktemp("m") / "confident.keras", breastmnist_path)


def _build(model: Path, data: Path, out: Path, *flags: str) -> dict:
    code = main(
        [
            "build",
            "--model",
            str(model),
            "--data",
            str(data),
            "--out",
            str(out),
            "--no-bench",
            "--sparsity",
            "0",
            *flags,
        ]
    )
    assert code == 0
    return json.loads((out / "report.json").read_text())


@pytest.mark.slow
def test_remedy_keeps_confident_sigmoid_within_budget(
    confident: Path, breastmnist_path: Path, tmp_path: Path
) -> None:
    plain = _build(confident, breastmnist_path, tmp_path / "plain", "--no-remedy")
    remedied = _build(
        confident,
        breastmnist_path,
        tmp_path / "remedy",
        "--val-max-int8-auroc-drop",
        "0.0",
        "--decide",
        "point",  # the rule before bounds: none within budget -> the best validation AUROC
    )
    assert plain["quantization"]["recipe"] == "plain"
    assert len(plain["quantization"]["tried"]) == 1
    q = remedied["quantization"]
    assert q["tried"][0]["name"] == "plain"
    assert q["diagnosis"]["output"]["distinct_levels"] >= 1
    assert inspect_tflite(tmp_path / "remedy" / "model_int8.tflite").full_integer
    best_val = max(t["val_auroc"] for t in q["tried"])
    assert q["tried"][[t["name"] for t in q["tried"]].index(q["recipe"])]["val_auroc"] == best_val
    ref = remedied["metrics"]["pruned_float32"]["auroc"]
    assert remedied["metrics"]["int8"]["auroc"] >= ref - 0.01
    if q["output"]["postprocess"] == "sigmoid":
        pre = json.loads((tmp_path / "remedy" / "preprocessing.json").read_text())
        assert pre["postprocess"] == "sigmoid"


@pytest.mark.parametrize(
    "flags, in_dtype, full_integer",
    [
        (["--io", "uint8"], "uint8", True),
        (["--io", "float32"], "float32", False),
        (["--activations", "int16"], "int16", True),
    ],
)
@pytest.mark.slow
def test_io_and_activation_options(
    flags: list[str], in_dtype: str, full_integer: bool, wdbc_npz: Path, tmp_path: Path
) -> None:
    from tests import models

    model = tmp_path / "mlp.keras"
    models.mlp().save(model)
    report = _build(model, wdbc_npz, tmp_path / "out", "--no-remedy", *flags)
    info = inspect_tflite(tmp_path / "out" / "model_int8.tflite")
    assert report["quantization"]["input"]["dtype"] == in_dtype
    assert info.full_integer is full_integer
    assert info.integer_ops


def _broken_python(tmp_path: Path) -> Path:
    """A 'runtime Python' that runs device_bench and then moves every output by half its
    dtype's range (an integer output wraps around): at least 64 quantization steps off
    whatever the untrained model computed. (Zeroing them was not enough: an int8 zero is
    0.5 after the sigmoid's zero point, which an untrained model can sit within 2 steps of.)"""
    script = tmp_path / "broken-python"
    root = Path(__file__).resolve().parents[3]
    script.write_text(f"""#!{sys.executable}
import sys
sys.path.insert(0, {str(root)!r})
import numpy as np
from device_bench.cli import main
args = sys.argv[3:]
if "--runtime" in args:
    i = args.index("--runtime")
    del args[i:i + 2]
code = main(args)
out = args[args.index("--output") + 1]
def moved(a):
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        span = int(info.max) - int(info.min) + 1
        shifted = (a.astype(np.int64) - int(info.min) + span // 2) % span + int(info.min)
        return shifted.astype(a.dtype)
    return a + 1000.0
with np.load(out) as d:
    arrays = {{k: moved(d[k]) for k in d.files}}
np.savez(out, **arrays)
sys.exit(code)
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.mark.slow
def test_broken_runtime_is_caught(
    wdbc_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests import models

    model = tmp_path / "mlp.keras"
    models.mlp().save(model)
    broken = _broken_python(tmp_path)
    argv = [
        "build",
        "--model",
        str(model),
        "--data",
        str(wdbc_npz),
        "--no-bench",
        "--runtime-python",
        str(broken),
    ]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    checks = {c["target"]: c for c in report["quantization"]["verification"]}
    # (litert-no-delegates is not asserted: on an untrained MLP the reference kernels can
    # differ from XNNPACK by 3 steps, a mismatch of their own; see the TFLM notes too)
    assert checks["litert"]["status"] == "ok"
    assert checks["tflite-runtime"]["status"] == "mismatch"
    assert "quantization steps" in checks["tflite-runtime"]["reason"]
    capsys.readouterr()
    assert (
        main(
            [
                *argv,
                "--out",
                str(tmp_path / "b"),
                "--require-runtime",
                RuntimeTarget.TFLITE_RUNTIME.value,
            ]
        )
        == 1
    )
    assert "tflite-runtime" in capsys.readouterr().err


@pytest.mark.skipif(
    not os.environ.get("BEDSIDE_LEGACY_PYTHON"),
    reason="set BEDSIDE_LEGACY_PYTHON to a numpy<2 Python with tflite-runtime",
)
def test_verification_on_legacy_tflite_runtime(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "build",
                "--out",
                str(out),
                "--no-bench",
                "--runtime-python",
                os.environ["BEDSIDE_LEGACY_PYTHON"],
                "--require-runtime",
                "tflite-runtime",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    check = {c["target"]: c for c in report["quantization"]["verification"]}["tflite-runtime"]
    assert check["status"] == "ok", check
    assert check["runtime"] == "tflite_runtime"
    assert check["max_steps_vs_primary"] <= 2


def test_int16_remedy_only_on_request() -> None:
    """16x8 kernels are not XNNPACK-accelerated: never a silent remedy."""
    from pipeline.config import QuantizeConfig
    from pipeline.models import OutputKind
    from pipeline.quantize.ptq import _ladder

    default = _ladder(QuantizeConfig(), OutputKind.SIGMOID)
    assert [c.name for c in default][:2] == ["plain", "logits"]
    assert all(c.activations == "int8" for c in default)
    opted = _ladder(QuantizeConfig(remedy_int16=True), OutputKind.SIGMOID)
    assert opted[-1].activations == "int16" and opted[-1].logits
    assert [c.name for c in _ladder(QuantizeConfig(remedy=False), OutputKind.SIGMOID)] == ["plain"]
