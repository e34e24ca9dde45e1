"""Quantization, random inputs and input files."""

from __future__ import annotations

import numpy as np
import pytest

from device_bench.errors import InputDataError
from device_bench.inputs import fit_samples, load_input_file, to_model_dtype
from device_bench.tensors import (
    Quantization,
    dequantize,
    quantization_of,
    quantize,
    random_input,
    tensor_nbytes,
)

INT8 = Quantization("int8", scale=0.5, zero_point=-3)


def test_quantize_int8_known_values() -> None:
    values = np.array([0.0, 1.0, -1.25, 0.25, 100.0, -100.0], dtype=np.float32)

    quantized = quantize(values, INT8)

    # round(x / 0.5) - 3, half away from zero (-2.5 -> -3, 0.5 -> 1), clipped.
    assert quantized.dtype == np.int8
    assert quantized.tolist() == [-3, -1, -6, -2, 127, -128]


def test_dequantize_int8_known_values() -> None:
    raw = np.array([-3, -1, -6, 127, -128], dtype=np.int8)

    real = dequantize(raw, INT8)

    assert real.dtype == np.float32
    assert real.tolist() == [0.0, 1.0, -1.5, 65.0, -62.5]


@pytest.mark.parametrize(
    "quantization",
    [INT8, Quantization("uint8", scale=1 / 255, zero_point=0), Quantization("int8", 0.02, 5)],
)
def test_round_trip_error_is_at_most_half_a_step(quantization: Quantization) -> None:
    assert quantization.scale is not None and quantization.zero_point is not None
    limits = np.iinfo(np.dtype(quantization.dtype))
    low = (limits.min - quantization.zero_point) * quantization.scale
    high = (limits.max - quantization.zero_point) * quantization.scale
    values = np.linspace(low, high, 1001, dtype=np.float64)

    restored = dequantize(quantize(values, quantization), quantization)

    assert np.max(np.abs(restored - values)) <= quantization.scale / 2 + 1e-6


def test_float_tensors_pass_through() -> None:
    values = np.array([0.1, -2.5], dtype=np.float64)
    float32 = Quantization("float32")

    assert quantize(values, float32).dtype == np.float32
    np.testing.assert_array_equal(
        dequantize(quantize(values, float32), float32), np.float32([0.1, -2.5])
    )


def test_zero_scale_means_not_quantized() -> None:
    detail = {"dtype": np.int32, "quantization": (0.0, 0)}

    assert quantization_of(detail) == Quantization("int32")
    assert not quantization_of(detail).is_quantized
    assert quantization_of({"dtype": np.int8, "quantization": (0.1, 4)}).is_quantized


def test_random_input_is_deterministic_and_spans_the_int8_range() -> None:
    first = random_input((1, 4096), "int8", seed=3)

    np.testing.assert_array_equal(first, random_input((1, 4096), "int8", seed=3))
    assert first.dtype == np.int8
    assert first.min() == -128 and first.max() == 127
    assert not np.array_equal(first, random_input((1, 4096), "int8", seed=4))


def test_random_float_input_is_not_zero() -> None:
    values = random_input((2, 8), "float32")

    assert values.dtype == np.float32
    assert np.count_nonzero(values) == values.size
    assert 0.3 < float(np.std(values)) < 3.0


def test_tensor_nbytes() -> None:
    assert tensor_nbytes((1, 12, 12, 4), np.int8) == 576
    assert tensor_nbytes((3, 4), np.float32) == 48
    assert tensor_nbytes((), np.float32) == 4


def test_npz_prefers_x_then_first_array(tmp_path) -> None:
    with_x = tmp_path / "with_x.npz"
    np.savez(with_x, a=np.zeros((1, 2)), x=np.ones((3, 2)))
    without_x = tmp_path / "without_x.npz"
    np.savez(without_x, samples=np.full((2, 2), 7.0))

    assert load_input_file(with_x).shape == (3, 2)
    assert load_input_file(without_x)[0, 0] == 7.0


def test_pickled_input_is_refused(tmp_path) -> None:
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}], dtype=object))  # np.save pickles objects

    with pytest.raises(InputDataError, match="cannot be read"):
        load_input_file(path)


@pytest.mark.parametrize("name", ["samples.csv", "missing.npy"])
def test_bad_input_paths_say_what_to_pass(tmp_path, name: str) -> None:
    with pytest.raises(InputDataError, match=name.split(".")[0]):
        load_input_file(tmp_path / name)


def test_fit_samples_adds_a_batch_axis_and_names_the_mismatch() -> None:
    assert fit_samples(np.zeros(16), [16], source="x.npy", model="m.tflite").shape == (1, 16)

    with pytest.raises(InputDataError, match=r"shape \(3, 10\).*expects \(N, 16\)"):
        fit_samples(np.zeros((3, 10)), [16], source="'x.npy'", model="m.tflite")


def test_integers_of_the_input_dtype_are_taken_as_quantized() -> None:
    already = np.array([[5, -7]], dtype=np.int8)

    np.testing.assert_array_equal(to_model_dtype(already, INT8), already)
    assert to_model_dtype(np.array([[1.0]], dtype=np.float32), INT8).tolist() == [[-1]]
