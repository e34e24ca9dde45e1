"""Keras -> TFLite conversion: float parity, full-integer int8, determinism, inspection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from converters import tflite
from converters.errors import ModelError, QuantizationError
from converters.inspection import inspect_tflite, require_full_integer
from device_bench.runner import run_model
from tests import models

INPUTS = {
    "mlp": lambda rng, n: rng.normal(size=(n, 30)),
    "conv1d": lambda rng, n: rng.normal(size=(n, 30, 1)),
    "conv2d": lambda rng, n: rng.uniform(0, 255, size=(n, 28, 28, 1)),
    "residual": lambda rng, n: rng.uniform(0, 255, size=(n, 28, 28, 1)),
}
GOLDEN = Path(__file__).parent / "golden"


def _model_and_data(kind: str, n: int = 64):
    import keras

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    return models.BUILDERS[kind](), INPUTS[kind](rng, n).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_float32_tflite_matches_keras(kind: str, tmp_path: Path) -> None:
    model, x = _model_and_data(kind)
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite.to_float32(model))
    got = run_model(path, x).outputs
    want = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_int8_is_full_integer_and_agrees(kind: str, tmp_path: Path) -> None:
    model, x = _model_and_data(kind, 128)
    data = tflite.to_int8(model, x[:64])
    info = inspect_tflite(data)
    assert info.full_integer, [t.name for t in info.float_tensors]
    assert info.tensors[info.inputs[0]].dtype == "INT8"
    assert info.tensors[info.outputs[0]].dtype == "INT8"
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    got = run_model(path, x[64:]).outputs
    want = model.predict(x[64:], verbose=0)
    out_scale = info.tensors[info.outputs[0]].scale[0]
    # judged by agreement and bounded error, not exact values
    assert np.max(np.abs(got - want)) < 0.1 + 2 * out_scale
    if want.shape[-1] > 1:
        assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.9


def test_same_inputs_give_byte_identical_int8() -> None:
    model, x = _model_and_data("residual")
    assert tflite.to_int8(model, x) == tflite.to_int8(model, x)


def test_signature_names_are_stable(tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    model, x = _model_and_data("mlp")
    interp = Interpreter(model_content=tflite.to_int8(model, x))
    assert interp.get_signature_list() == {
        tflite.SIGNATURE_KEY: {"inputs": [tflite.INPUT_NAME], "outputs": [tflite.OUTPUT_NAME]}
    }


def test_float_model_fails_the_full_integer_check() -> None:
    model, _ = _model_and_data("mlp")
    info = inspect_tflite(tflite.to_float32(model))
    assert not info.full_integer
    with pytest.raises(QuantizationError, match=r"not full-integer.*FULLY_CONNECTED"):
        require_full_integer(info, "m.tflite")


def test_inspection_rejects_non_tflite() -> None:
    with pytest.raises(ModelError, match="TFL3"):
        inspect_tflite(b"\x00" * 64)


def test_int8_structure_golden(regen_golden: bool) -> None:
    """Ops, versions and dtypes of the int8 residual model; regenerate with --regen-golden."""
    model, x = _model_and_data("residual")
    doc = inspect_tflite(tflite.to_int8(model, x)).to_json()
    structure = {
        "full_integer": doc["full_integer"],
        "input_dtype": doc["input"]["dtype"],
        "output_dtype": doc["output"]["dtype"],
        "ops": [[op["op"], op["version"], op["inputs"], op["outputs"]] for op in doc["ops"]],
    }
    golden = GOLDEN / "residual_int8_structure.json"
    if regen_golden or not golden.exists():
        golden.write_text(json.dumps(structure, indent=1) + "\n")
        if not regen_golden:
            pytest.fail(f"golden file {golden.name} was missing and has been written; rerun")
    assert structure == json.loads(golden.read_text())
