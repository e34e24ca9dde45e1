"""The `litert-compiled` verification target: CompiledModel in every build that has it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import RuntimeTarget
from pipeline.device.client import compiled_available
from pipeline.quantize.verification import run_on_runtime

MODELS = Path(__file__).resolve().parents[2] / "device_bench" / "models"

pytestmark = pytest.mark.skipif(not compiled_available(), reason="no CompiledModel here")


def test_compiled_target_runs_like_the_interpreter() -> None:
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    compiled, info = run_on_runtime(RuntimeTarget.LITERT_COMPILED, MODELS / "dense_int8.tflite", x)
    plain, _ = run_on_runtime(RuntimeTarget.LITERT, MODELS / "dense_int8.tflite", x)
    assert info["status"] == "ok" and "CompiledModel" in info["runtime_version"]
    assert compiled is not None and plain is not None
    np.testing.assert_array_equal(compiled, plain)


def test_compiled_target_refuses_a_sparse_model_like_xnnpack() -> None:
    x = np.zeros((2, 64), np.float32)
    outputs, info = run_on_runtime(RuntimeTarget.LITERT_COMPILED, MODELS / "sparse_int8.tflite", x)
    assert outputs is None and info["status"] == "refused"
    assert "CompiledModel" in info["reason"]


def test_every_build_verifies_on_compiled_model_where_it_exists() -> None:
    from pipeline.cli.options import _runtimes

    _, runtimes = _runtimes({"runtime_python": None, "require_runtime": []})
    assert runtimes[:3] == (
        RuntimeTarget.LITERT,
        RuntimeTarget.LITERT_NO_DELEGATES,
        RuntimeTarget.LITERT_COMPILED,
    )
    assert set(runtimes[3:]) <= {RuntimeTarget.TFLM}  # where [micro] is installed
