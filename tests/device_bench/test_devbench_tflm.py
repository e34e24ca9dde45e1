"""TensorFlow Lite Micro through device_bench (`--runtime tflm`, `micro`): skipped without
the [micro] extra (tflite-micro)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device_bench import run_model
from device_bench.cli import main
from tests.device_bench.tflite_files import model_path

pytest.importorskip("tflite_micro")

from device_bench.micro import _probe, micro_isolated, micro_report  # noqa: E402
from device_bench.tflm import ARENA_RESOLUTION, model_ops  # noqa: E402

INT8_MODELS = ("dense_int8", "conv_int8")


@pytest.mark.parametrize("name", INT8_MODELS)
def test_tflm_runs_like_litert(name: str) -> None:
    """TFLM's kernels give LiteRT's outputs on the int8 fixtures, within one step."""
    x = np.random.default_rng(1).normal(size=(5, *_sample_shape(name))).astype(np.float32)
    tflm = run_model(model_path(name), x, runtime="tflm")
    litert = run_model(model_path(name), x, runtime="ai_edge_litert", xnnpack=False)
    assert tflm.runtime == "tflm" and not tflm.xnnpack
    assert tflm.outputs.shape == litert.outputs.shape == (5, *litert.outputs.shape[1:])
    step = tflm.output_quantization.scale
    assert step is not None
    assert np.max(np.abs(tflm.outputs - litert.outputs)) <= step * 1.01


def _sample_shape(name: str) -> tuple[int, ...]:
    return {"dense_int8": (16,), "conv_int8": (12, 12, 1)}[name]


@pytest.mark.parametrize("name", INT8_MODELS)
def test_arena_is_the_smallest_that_runs(name: str) -> None:
    """The searched arena runs; one step less does not; the allocator's estimate is beside."""
    report = micro_report(str(model_path(name)), runs=2)
    assert report.status == "ok", report.reason
    arena = report.arena_bytes
    assert arena is not None and report.arena_estimate_bytes is not None
    assert arena >= report.arena_estimate_bytes
    assert arena % ARENA_RESOLUTION == 0
    sample = np.zeros(report.input["shape"], report.input["dtype"])  # type: ignore[index]
    assert _probe(str(model_path(name)), arena, sample) == "ok"
    assert _probe(str(model_path(name)), arena - ARENA_RESOLUTION, sample) != "ok"
    assert report.flash_bytes == model_path(name).stat().st_size
    assert report.missing_ops == () and report.float_ops == ()
    assert "not an MCU timing" in report.host_timing["label"]  # type: ignore[index]


def test_float_ops_are_named() -> None:
    ops = model_ops(model_path("dense_float32").read_bytes())
    assert "FULLY_CONNECTED" in ops.float_ops
    assert model_ops(model_path("dense_int8").read_bytes()).float_ops == ()


def test_missing_op_is_refused_with_its_name(capsys: pytest.CaptureFixture[str]) -> None:
    """A sparse model needs DENSIFY, which TFLM lacks: refused, exit 1, op named."""
    code = main([str(model_path("sparse_int8")), "--runtime", "tflm", "--json", "-"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)["models"][0]
    assert report["status"] == "refused"
    assert report["missing_ops"] == ["DENSIFY"]
    assert "DENSIFY" in report["reason"]


def test_cli_reports_arena_and_flash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "micro.json"
    assert main([str(model_path("conv_int8")), "--runtime", "tflm", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "arena KiB" in table and "not an MCU timing" in table
    report = json.loads(out.read_text())["models"][0]
    assert report["arena_bytes"] >= report["arena_estimate_bytes"] > 0
    assert report["flash_bytes"] == model_path("conv_int8").stat().st_size
    assert "CONV_2D" in report["ops"]


def test_native_crash_is_isolated(tmp_path: Path) -> None:
    """A child that dies by a signal is a `crashed` report, not the end of the run."""
    python = tmp_path / "crashing-python"
    python.write_text("#!/bin/sh\nkill -SEGV $$\n")
    python.chmod(0o755)
    report = micro_isolated(str(model_path("conv_int8")), python=str(python))
    assert report["status"] == "crashed"
    assert signal.Signals.SIGSEGV.name in report["reason"]


def test_tflm_brings_no_tensorflow() -> None:
    code = (
        "import sys; from device_bench.micro import micro_report; "
        f"micro_report({str(model_path('dense_int8'))!r}, runs=1); "
        "sys.exit(1 if 'tensorflow' in sys.modules else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0
