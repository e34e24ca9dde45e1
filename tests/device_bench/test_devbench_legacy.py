"""The legacy runtime (tflite-runtime 2.14 with numpy<2) in its own venv.

Set BEDSIDE_LEGACY_PYTHON to that venv's Python; skipped otherwise.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from device_bench import BenchSettings, Status, bench_models, run_isolated, run_model
from device_bench.child import child_environment
from device_bench.runtime import load_runtime
from tests.device_bench.tflite_files import model_path


def _samples(shape: tuple[int, ...], count: int = 25) -> np.ndarray:
    return np.random.default_rng(11).standard_normal((count, *shape)).astype(np.float32)


def test_bench_under_the_legacy_python_uses_tflite_runtime(legacy_python: str) -> None:
    completed = subprocess.run(
        [
            legacy_python,
            "-m",
            "device_bench",
            str(model_path("dense_int8")),
            str(model_path("dense_float32")),
            "--runs",
            "10",
            "--min-seconds",
            "0.05",
            "--json",
            "-",
        ],
        capture_output=True,
        text=True,
        env=child_environment(),
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert [m["runtime"] for m in report["models"]] == ["tflite_runtime", "tflite_runtime"]
    assert all(m["status"] == "ok" for m in report["models"])


def test_bench_from_here_with_python_setting(legacy_python: str) -> None:
    settings = BenchSettings(runs=10, warmup=1, min_seconds=0.05, python=legacy_python)

    report = bench_models([model_path("conv_int8")], settings)

    model = report.models[0]
    assert model.status is Status.OK, model.reason
    assert model.runtime == "tflite_runtime"
    assert report.to_json()["settings"]["python"] == legacy_python


@pytest.mark.parametrize("name", ["dense_int8", "conv_int8", "sparse_int8"])
def test_int8_outputs_match_within_one_step(legacy_python: str, name: str) -> None:
    path = model_path(name)
    samples = _samples(_input_shape(path))

    legacy = run_isolated(path, samples, python=legacy_python)
    current = run_model(path, samples)

    assert legacy.runtime == "tflite_runtime"
    assert legacy.output_quantization == current.output_quantization
    steps = np.abs(legacy.raw_outputs.astype(np.int32) - current.raw_outputs.astype(np.int32))
    assert steps.max() <= 1
    scale = current.output_quantization.scale
    assert scale is not None
    np.testing.assert_allclose(legacy.outputs, current.outputs, atol=scale * 1.001)


@pytest.mark.parametrize("name", ["dense_float32", "conv1d_float32"])
def test_float_outputs_match(legacy_python: str, name: str, tmp_path: Path) -> None:
    path = model_path(name)
    samples = _samples(_input_shape(path))
    np.save(tmp_path / "x.npy", samples)

    # Through the CLI, as the pipeline's verification step calls it.
    completed = subprocess.run(
        [
            legacy_python,
            "-m",
            "device_bench",
            "run",
            str(path),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npz"),
        ],
        capture_output=True,
        text=True,
        env=child_environment(),
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["runtime"] == "tflite_runtime"
    with np.load(tmp_path / "y.npz") as written:
        np.testing.assert_allclose(written["outputs"], run_model(path, samples).outputs, atol=1e-5)


def _input_shape(path: Path) -> tuple[int, ...]:
    interpreter = load_runtime().create_interpreter(str(path))
    return tuple(int(d) for d in interpreter.get_input_details()[0]["shape"][1:])
