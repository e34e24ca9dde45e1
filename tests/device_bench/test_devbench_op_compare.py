"""Per-op comparison of two runtimes: every op's output, and the first op that parts ways."""

from __future__ import annotations

import numpy as np

from device_bench.compare import RunSpec, compare_ops, first_divergence
from tests.device_bench.tflite_files import model_path

XNNPACK = RunSpec("litert", xnnpack=True)
REFERENCE = RunSpec("litert-no-delegates", xnnpack=False)


def _pixels(count: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, 12, 12, 3)).astype(np.float32)


def test_a_runtime_against_itself_agrees_on_every_op() -> None:
    errors = compare_ops(model_path("resize_int8"), _pixels(), REFERENCE, REFERENCE)

    assert [e.op for e in errors][:3] == ["MUL", "ADD", "RESIZE_BILINEAR"]
    assert all(e.max_steps == 0 and e.differing == 0 for e in errors)
    assert first_divergence(errors) is None
    assert errors[0].to_json()["snr_db"] is None  # identical: infinite SNR


def test_the_resize_front_is_where_xnnpack_and_the_reference_kernels_part_ways() -> None:
    errors = compare_ops(model_path("resize_int8"), _pixels(), XNNPACK, REFERENCE)

    first = first_divergence(errors)
    assert first is not None and (first.index, first.op) == (2, "RESIZE_BILINEAR")
    assert first.local_max_steps is not None and first.local_max_steps > 2
    assert 0 < first.snr_db < 60
    conv = errors[3]
    # the conv inherits the resize's error; fed the same inputs it differs by a step at most
    assert conv.max_steps is not None and conv.local_max_steps is not None
    assert conv.local_max_steps <= 1 < conv.max_steps


def test_float_outputs_have_no_steps_but_an_snr() -> None:
    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    errors = compare_ops(model_path("dense_float32"), x, XNNPACK, REFERENCE)
    assert all(e.max_steps is None and e.dtype == "float32" for e in errors)
    assert first_divergence(errors) is None


def test_int8_against_its_float_model_matches_ops_by_tensor_name(tmp_path) -> None:
    from device_bench.compare import compare_to_model

    # the dominant-conv int8 file against itself read as the reference: every op matches
    # and nothing differs; against the float Dense MLP nothing matches
    path = model_path("dominant_conv_int8")
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 16)).astype(np.float32)
    errors = compare_to_model(path, path, x, XNNPACK)
    assert [e.op for e in errors] == [
        "QUANTIZE",
        "CONV_2D",
        "MEAN",
        "FULLY_CONNECTED",
        "DEQUANTIZE",
    ]
    assert all(e.max_abs == 0 for e in errors) and first_divergence(errors) is None
