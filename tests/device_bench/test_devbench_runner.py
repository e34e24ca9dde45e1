"""run_model against direct interpreter calls, batching, delegate fallback, errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from device_bench import (
    InputDataError,
    ModelError,
    ModelFileError,
    ModelRefusedError,
    RuntimeUnavailableError,
    run_isolated,
    run_model,
)
from device_bench.runtime import load_runtime
from tests.device_bench.tflite_files import RUNNABLE_MODELS, model_path


def _samples(path: Path, count: int, seed: int = 7) -> np.ndarray:
    interpreter = load_runtime().create_interpreter(str(path))
    shape = interpreter.get_input_details()[0]["shape"][1:]
    return np.random.default_rng(seed).standard_normal((count, *shape)).astype(np.float32)


def _direct(path: Path, samples: np.ndarray, *, xnnpack: bool) -> np.ndarray:
    """What a user would write by hand: one sample per invoke, own quantization."""
    interpreter = load_runtime().create_interpreter(str(path), xnnpack=xnnpack)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    outputs = []
    for sample in samples:
        value = sample[np.newaxis]
        if scale:
            info = np.iinfo(detail["dtype"])
            value = np.clip(np.round(value / scale) + zero_point, info.min, info.max)
        interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    return np.concatenate(outputs)


@pytest.mark.parametrize("xnnpack", [True, False], ids=["xnnpack", "no-xnnpack"])
@pytest.mark.parametrize("name", RUNNABLE_MODELS)
def test_run_matches_direct_interpreter_calls(name: str, xnnpack: bool) -> None:
    path = model_path(name)
    samples = _samples(path, 37)

    result = run_model(path, samples, xnnpack=xnnpack)

    expected = _direct(path, samples, xnnpack=xnnpack)
    assert result.raw_outputs.dtype == expected.dtype
    assert result.outputs.dtype == np.float32
    assert result.outputs.shape[0] == 37
    assert result.xnnpack is xnnpack and result.note is None
    if result.output_quantization.is_quantized:
        np.testing.assert_array_equal(result.raw_outputs, expected)
        scale = result.output_quantization.scale
        zero_point = result.output_quantization.zero_point
        np.testing.assert_allclose(
            result.outputs, (expected.astype(np.float32) - zero_point) * scale, rtol=1e-6
        )
    else:
        np.testing.assert_allclose(result.outputs, expected, atol=1e-5)


@pytest.mark.parametrize("name", ["dense_int8", "conv_int8"])
def test_batched_and_one_by_one_agree(name: str) -> None:
    samples = _samples(model_path(name), 70)

    batched = run_model(model_path(name), samples, batch_size=32)
    single = run_model(model_path(name), samples, batch_size=1)

    assert batched.batched and not single.batched
    np.testing.assert_array_equal(batched.raw_outputs, single.raw_outputs)


def test_int8_model_reports_its_quantization() -> None:
    result = run_model(model_path("dense_int8"), _samples(model_path("dense_int8"), 2))

    assert result.input_quantization.dtype == "int8"
    assert result.input_quantization.scale and result.input_quantization.scale > 0
    assert result.output_quantization.dtype == "int8"
    assert result.raw_outputs.dtype == np.int8


def test_no_inputs_runs_one_random_sample() -> None:
    result = run_model(model_path("conv_int8"), None)

    assert result.raw_outputs.shape == (1, 3)


def test_refused_delegate_falls_back_with_a_note() -> None:
    path = model_path("sparse_int8")

    result = run_model(path, _samples(path, 3))

    if result.runtime != "ai_edge_litert":
        pytest.skip("only ai-edge-litert's XNNPACK refuses sparse int8 weights")
    assert result.xnnpack is False
    assert result.note is not None
    assert "default delegates refused the model" in result.note
    assert "ran without them" in result.note


def test_refused_delegate_without_fallback_is_an_error() -> None:
    if load_runtime().name != "ai_edge_litert":
        pytest.skip("only ai-edge-litert's XNNPACK refuses sparse int8 weights")

    with pytest.raises(ModelRefusedError, match="refused model"):
        run_model(model_path("sparse_int8"), None, delegate_fallback=False)


def test_several_outputs_are_refused_with_what_was_expected() -> None:
    with pytest.raises(ModelError, match=r"1 input\(s\) and 2 output\(s\).*exactly one"):
        run_model(model_path("two_outputs"), np.zeros((1, 4), dtype=np.float32))


def test_wrong_input_shape_names_both_shapes() -> None:
    with pytest.raises(InputDataError, match=r"\(5, 15\).*expects \(N, 16\)"):
        run_model(model_path("dense_int8"), np.zeros((5, 15), dtype=np.float32))


def test_not_a_flatbuffer(tmp_path: Path) -> None:
    fake = tmp_path / "notes.tflite"
    fake.write_text("this is not a model")

    with pytest.raises(ModelFileError, match="not a TFLite flatbuffer"):
        run_model(fake, None)


def test_truncated_model_is_refused(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(model_path("dense_int8").read_bytes()[:700])

    with pytest.raises(ModelRefusedError):
        run_model(truncated, None)


def test_wrong_suffix_says_to_convert(tmp_path: Path) -> None:
    keras_file = tmp_path / "model.keras"
    keras_file.write_bytes(b"PK")

    with pytest.raises(ModelFileError, match=r"suffix '.keras'.*Convert"):
        run_model(keras_file, None)


def test_unknown_runtime_lists_the_known_ones() -> None:
    with pytest.raises(RuntimeUnavailableError, match="ai_edge_litert, tflite_runtime"):
        run_model(model_path("dense_int8"), None, runtime="onnxruntime")


def test_isolated_run_matches_in_process_run() -> None:
    samples = _samples(model_path("conv_int8"), 9)

    isolated = run_isolated(model_path("conv_int8"), samples)
    in_process = run_model(model_path("conv_int8"), samples)

    np.testing.assert_array_equal(isolated.raw_outputs, in_process.raw_outputs)
    assert isolated.output_quantization == in_process.output_quantization


def test_isolated_run_raises_the_childs_error_class() -> None:
    with pytest.raises(ModelError, match="exactly one input and one output"):
        run_isolated(model_path("two_outputs"), np.zeros((1, 4), dtype=np.float32))


@pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None, reason="tensorflow is not installed"
)
@pytest.mark.slow
def test_tensorflow_lite_is_the_last_resort_runtime() -> None:
    samples = _samples(model_path("dense_float32"), 4)

    # In a child: importing TensorFlow here would cost seconds and leak into other tests.
    result = run_isolated(model_path("dense_float32"), samples, runtime="tensorflow")

    assert result.runtime == "tensorflow"
    np.testing.assert_allclose(
        result.outputs, run_model(model_path("dense_float32"), samples).outputs, atol=1e-5
    )
