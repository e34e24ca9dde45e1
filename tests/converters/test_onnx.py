"""ONNX export: both files check, run in onnxruntime, and match their sources; a mismatch is
reported as not ok; the build and `export-onnx` write them; a missing extra exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.models import OutputKind
from tests import models


@pytest.fixture
def onnx_extra() -> None:
    for name in ("tf2onnx", "onnx", "onnxruntime"):
        pytest.importorskip(name)


def bn_dropout(n_features: int = 12):
    """Functional Dense model with BatchNormalization and Dropout (identity at inference)."""
    import keras

    inputs = keras.Input(shape=(n_features,), name="features")
    x = keras.layers.Dense(16, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="bn_dropout")
    # non-trivial moving statistics, so a graph using batch statistics would not match
    rng = np.random.default_rng(1)
    bn = model.get_layer("bn")
    bn.set_weights(
        [
            rng.uniform(0.5, 2, 16),
            rng.normal(0, 0.5, 16),
            rng.normal(0, 1, 16),
            rng.uniform(0.5, 3, 16),
        ]
    )
    return model


CASES = {  # name: (builder, kind, input scale)
    "mlp": (lambda: models.mlp(n_features=12), OutputKind.SIGMOID, 1.0),
    "conv2d": (lambda: models.conv2d(shape=(12, 12, 1)), OutputKind.SOFTMAX, 255.0),
    "residual": (lambda: models.residual(shape=(12, 12, 1)), OutputKind.SIGMOID, 255.0),
    "bn_dropout": (bn_dropout, OutputKind.SOFTMAX, 1.0),
}


def _case(name: str, tmp_path: Path, samples: int = 48):
    import keras

    from converters import tflite

    keras.utils.set_random_seed(0)
    builder, kind, scale = CASES[name]
    model = builder()
    shape = (samples, *model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, shape) * scale if scale > 1 else rng.normal(0, 1, shape)
    x = x.astype(np.float32)
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(tflite.to_int8(model, x[:32]))
    return model, kind, x, path


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_files_match_keras_and_tflite(name: str, tmp_path: Path, onnx_extra: None) -> None:
    import onnx

    from converters import onnx_export
    from pipeline.release import onnx_parity

    model, kind, x, path = _case(name, tmp_path)
    exported = onnx_parity.export(model, path, x, kind, kind)
    f, q = exported.parity["float"], exported.parity["int8"]
    assert f["max_abs_diff"] <= 1e-4 and f["ok"], f
    assert q["agreement"] >= 0.99 and q["max_steps"] is not None and q["max_steps"] <= 1, q
    assert q["ok"] and exported.ok and not exported.warnings()
    assert exported.parity["opset"] == 17

    float_proto = onnx.load_from_string(exported.float_onnx)
    int8_proto = onnx.load_from_string(exported.int8_onnx)
    for proto in (float_proto, int8_proto):
        onnx.checker.check_model(proto, full_check=True)
        assert [i.name for i in proto.graph.input] == ["input"]
        assert [o.name for o in proto.graph.output] == ["output"]
    ops = {n.op_type for n in int8_proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    elem = int8_proto.graph.input[0].type.tensor_type.elem_type
    assert elem == onnx.TensorProto.INT8
    # weights are uint8 (see test_unsigned_weights_do_not_saturate_in_onnxruntime)
    types = {i.name: i.data_type for i in int8_proto.graph.initializer}
    weights = [n.input[0] for n in int8_proto.graph.node if n.op_type == "DequantizeLinear"]
    assert onnx.TensorProto.UINT8 in {types.get(w) for w in weights}
    assert onnx.TensorProto.INT8 not in {types.get(w) for w in weights}
    # dynamic batch: one sample and an odd batch run and agree with the full batch
    full = onnx_export.run_onnx(exported.float_onnx, x)
    for n in (1, 7):
        np.testing.assert_allclose(
            onnx_export.run_onnx(exported.float_onnx, x[:n]), full[:n], atol=1e-6
        )


def test_int8_with_host_sigmoid_reads_logits(tmp_path: Path, onnx_extra: None) -> None:
    """The int8 model may emit logits (the remedy moves the sigmoid to the host)."""
    from converters import tflite
    from pipeline.evaluate.metrics import probabilities
    from pipeline.release import onnx_parity

    model, kind, x, path = _case("mlp", tmp_path)
    with tflite.logits_view(model) as (view, removed):
        path.write_bytes(tflite.to_int8(view, x[:32]))
    assert removed == "sigmoid"
    exported = onnx_parity.export(model, path, x, kind, OutputKind.LOGITS)
    assert exported.ok, exported.parity
    p_int8 = probabilities(exported.int8_outputs, OutputKind.LOGITS)
    p_keras = probabilities(model.predict(x, verbose=0), kind)
    assert np.max(np.abs(p_int8 - p_keras)) < 0.1  # int8 rounding of random inputs
    # read as probabilities instead, the same outputs would be far off
    assert np.max(np.abs(probabilities(exported.int8_outputs, kind) - p_keras)) > 0.3


def test_perturbed_keras_weight_fails_float_parity(tmp_path: Path, onnx_extra: None) -> None:
    from converters import onnx_export
    from pipeline.evaluate.metrics import probabilities
    from pipeline.release.onnx_parity import float_parity

    model, kind, x, _ = _case("bn_dropout", tmp_path)
    data = onnx_export.keras_to_onnx(model)
    onnx_probs = probabilities(onnx_export.run_onnx(data, x), kind)
    keras_probs = probabilities(model.predict(x, verbose=0), kind)
    assert float_parity(onnx_probs, keras_probs)["ok"]

    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    kernel[0, 0] += 1.0
    head.set_weights([kernel, bias])
    perturbed = probabilities(model.predict(x, verbose=0), kind)
    doc = float_parity(onnx_probs, perturbed)
    assert not doc["ok"] and doc["max_abs_diff"] > 1e-4


def test_unsigned_weights_do_not_saturate_in_onnxruntime(onnx_extra: None) -> None:
    """Int8 weights fuse into onnxruntime's uint8 x int8 kernel, which on AVX2 CPUs without
    VNNI saturates 255 * 127 + 255 * 127 at int16; stored as uint8 they compute exactly."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from converters import onnx_export

    w = np.array([[127, -127], [127, 127], [127, -127], [127, 127]], np.int8)
    inits = [
        numpy_helper.from_array(np.float32(0.01), "sa"),
        numpy_helper.from_array(np.int8(-128), "zp"),  # shared by activations and output
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.full(2, 0.01, np.float32), "sw"),
        numpy_helper.from_array(np.zeros(2, np.int8), "zw"),
        numpy_helper.from_array(np.float32(0.1), "sy"),
    ]
    nodes = [  # the QDQ MatMul tf2onnx writes for a FULLY_CONNECTED between two layers
        helper.make_node("QuantizeLinear", ["input", "sa", "zp"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "sa", "zp"], ["a"]),
        helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"], axis=1),
        helper.make_node("MatMul", ["a", "wf"], ["y"]),
        helper.make_node("QuantizeLinear", ["y", "sy", "zp"], ["qy"]),
        helper.make_node("DequantizeLinear", ["qy", "sy", "zp"], ["output"]),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, k]) for n, k in
          (("input", 4), ("output", 2))]  # fmt: skip
    graph = helper.make_graph(nodes, "qdq_matmul", io[:1], io[1:], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)

    codes = np.array([[127, 127, 127, 127], [127, 100, -128, 50]], np.int64)
    x = ((codes + 128) * 0.01).astype(np.float32)
    expected = np.clip(np.round((codes + 128) @ w.astype(np.int64) * 1e-4 / 0.1), 0, 255) * 0.1
    assert onnx_export._unsigned_weights(model.graph) == 1
    onnx.checker.check_model(model, full_check=True)
    types = {i.name: i.data_type for i in model.graph.initializer}
    assert types["w_u8"] == types["zw_u8"] == TensorProto.UINT8
    assert types["zp"] == TensorProto.INT8 and "w" not in types and "zw" not in types
    out = onnx_export.run_onnx(model.SerializeToString(), x)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_int8_parity_flags_outputs_two_steps_off(tmp_path: Path) -> None:
    from pipeline.release.onnx_parity import int8_parity

    raw = np.arange(-60, 60, dtype=np.int8).reshape(-1, 1)
    pred = (raw[:, 0] >= 0).astype(int)
    assert int8_parity(raw, raw, pred, pred)["ok"]
    one = int8_parity((raw + 1).astype(np.int8), raw, pred, pred)
    assert one["ok"] and one["max_steps"] == 1
    two = int8_parity((raw + 2).astype(np.int8), raw, pred, pred)
    assert not two["ok"] and two["max_steps"] == 2
    flipped = pred.copy()
    flipped[:5] = 1 - flipped[:5]
    disagree = int8_parity(raw, raw, flipped, pred)
    assert not disagree["ok"] and disagree["agreement"] == pytest.approx(1 - 5 / 120)


def test_parity_failure_is_a_warning(tmp_path: Path) -> None:
    from pipeline.release.onnx_parity import OnnxExport, float_parity, int8_parity

    raw = np.zeros((4, 1), np.int8)
    pred = np.zeros(4, int)
    bad = OnnxExport(
        b"",
        b"",
        {
            "float": float_parity(np.ones((4, 2)), np.zeros((4, 2))),
            "int8": int8_parity(raw + 3, raw, pred, pred),
            "opset": 17,
        },
        np.zeros((4, 1)),
        np.zeros((4, 1)),
    )
    assert not bad.ok
    assert len(bad.warnings()) == 2 and "model_int8.onnx" in bad.warnings()[1]


@pytest.mark.slow
def test_build_with_onnx(tmp_path: Path, onnx_extra: None) -> None:
    from pipeline.release import artifacts

    out = tmp_path / "build"
    assert (
        main(
            [
                "build",
                "--out",
                str(out),
                "--no-bench",
                "--sparsity",
                "0.5",
                "--onnx",
                "--require-onnx-parity",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    for key, name in (
        ("onnx_pruned_float32", "model_pruned_float32.onnx"),
        ("onnx_int8", "model_int8.onnx"),
    ):
        art = report["artifacts"][key]
        assert Path(art["path"]) == out / name
        assert art["bytes"] == (out / name).stat().st_size
        assert art["sha256"] == artifacts.sha256(out / name)
    parity = report["onnx"]["parity"]
    assert parity["float"]["ok"] and parity["float"]["max_abs_diff"] <= 1e-4
    assert parity["int8"]["ok"] and parity["int8"]["max_steps"] <= 1
    assert parity["opset"] == 17
    m = report["metrics"]
    assert m["onnx_pruned_float32"]["auroc"] == pytest.approx(
        m["pruned_float32"]["auroc"], abs=1e-3
    )
    assert m["onnx_int8"]["auroc"] == pytest.approx(m["int8"]["auroc"], abs=1e-3)
    assert m["onnx_int8"]["agreement"] == pytest.approx(m["int8"]["agreement"], abs=0.02)
    assert not [w for w in report["warnings"] if "ONNX" in w]


def test_export_onnx_command(
    tmp_path: Path, onnx_extra: None, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _, _, path = _case("mlp", tmp_path)
    model_path = tmp_path / "pruned.keras"
    model.save(model_path)
    out = tmp_path / "onnx"
    assert (
        main(
            [
                "export-onnx",
                "--model",
                str(model_path),
                "--tflite",
                str(path),
                "--out",
                str(out),
                "--opset",
                "15",
            ]
        )
        == 0
    )
    assert (out / "model_pruned_float32.onnx").is_file() and (out / "model_int8.onnx").is_file()
    doc = json.loads((out / "onnx.json").read_text())
    assert doc["parity"]["opset"] == 15 and doc["parity"]["float"]["ok"]
    assert doc["parity"]["int8"]["ok"]
    assert "parity ok" in capsys.readouterr().out


def test_onnx_without_extra_exits_2_before_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from converters import onnx_export

    real = onnx_export.find_spec
    monkeypatch.setattr(
        onnx_export, "find_spec", lambda name: None if name == "tf2onnx" else real(name)
    )
    out = tmp_path / "build"
    assert main(["build", "--out", str(out), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'bedside-lite[onnx]'" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_opset_out_of_range_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["build", "--out", str(tmp_path / "b"), "--onnx", "--opset", "9"]) == 2
    assert "--opset must be in [13, 18]" in capsys.readouterr().err
