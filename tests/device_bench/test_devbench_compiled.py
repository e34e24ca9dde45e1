"""`--api compiled`: LiteRT's CompiledModel behind the Interpreter's face; refusals, no crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device_bench.cli import main
from device_bench.compiled import api_runtime, compiled_available
from device_bench.errors import ModelRefusedError, RuntimeUnavailableError
from device_bench.runner import run_model
from tests.device_bench.tflite_files import model_path

pytestmark = pytest.mark.skipif(not compiled_available(), reason="no CompiledModel here")


@pytest.mark.parametrize("name", ["dense_int8", "conv_int8", "dense_float32"])
def test_compiled_model_outputs_equal_the_interpreters(name: str) -> None:
    path = model_path(name)
    shape = {"dense_int8": (6, 16), "conv_int8": (6, 12, 12, 1), "dense_float32": (6, 16)}[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    compiled = run_model(path, x, runtime=api_runtime(None, "compiled"))
    interpreter = run_model(path, x)
    assert "CompiledModel cpu" in compiled.runtime_version
    np.testing.assert_array_equal(compiled.raw_outputs, interpreter.raw_outputs)
    assert compiled.output_quantization == interpreter.output_quantization


def test_a_sparse_model_xnnpack_refuses_is_refused_not_crashed() -> None:
    runtime = api_runtime(None, "compiled")
    with pytest.raises(ModelRefusedError, match="CompiledModel cpu refused"):
        run_model(model_path("sparse_int8"), np.zeros((1, 64), np.float32), runtime=runtime)


def test_a_missing_gpu_is_a_clear_refusal(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = [str(model_path("dense_int8")), "--api", "compiled", "--accelerator", "gpu"]
    code = main([*args, "--runs", "5", "--min-seconds", "0", "--json", str(out)])
    entry = json.loads(out.read_text())["models"][0]
    if entry["status"] == "ok":
        pytest.skip("this machine has a GPU CompiledModel can use")
    assert code == 1 and entry["status"] == "refused"
    assert "GPU" in entry["reason"] and "does not fall back" in entry["reason"]


def test_bench_with_the_compiled_api_measures_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = [str(model_path("dense_int8")), "--api", "compiled", "--runs", "5"]
    assert main([*args, "--min-seconds", "0", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["api"] == "compiled" and doc["settings"]["accelerator"] == "cpu"
    assert "CompiledModel" in doc["models"][0]["runtime_version"]
    assert doc["models"][0]["latency_ms"]["p50"] > 0


def test_an_accelerator_without_the_compiled_api_is_bad_input(capsys) -> None:
    assert main([str(model_path("dense_int8")), "--accelerator", "gpu"]) == 2
    assert "needs api compiled" in capsys.readouterr().err
    with pytest.raises(RuntimeUnavailableError, match="--api compiled"):
        api_runtime(None, "interpreter", "npu")


def test_no_xnnpack_has_no_meaning_for_compiled_model() -> None:
    runtime = api_runtime(None, "compiled")
    with pytest.raises(ModelRefusedError, match="--no-xnnpack"):
        run_model(
            model_path("dense_int8"),
            np.zeros((1, 16), np.float32),
            runtime=runtime,
            xnnpack=False,
        )
