"""`bedside-lite bench`: device_bench through the same subprocess interface as the build."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.cli import main

MODELS = Path(__file__).resolve().parents[2] / "device_bench" / "models"


def test_bench_two_models_interleaved(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = MODELS / "dense_float32.tflite", MODELS / "dense_int8.tflite"
    assert main(["bench", str(a), str(b), "--runs", "30", "--min-seconds", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    first, second = doc["models"]
    assert first["status"] == second["status"] == "ok"
    assert first["ratio_to_first"]["p50"] == 1.0
    assert second["ratio_to_first"]["p50"] == pytest.approx(
        second["latency_ms"]["p50"] / first["latency_ms"]["p50"], rel=1e-6
    )


def test_bench_reports_a_bad_model_without_dying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.tflite"
    data = (MODELS / "dense_int8.tflite").read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    code = main(
        [
            "bench",
            str(MODELS / "dense_float32.tflite"),
            str(broken),
            "--runs",
            "20",
            "--min-seconds",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "refused" in out and "dense_float32.tflite: " in out


def test_bench_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", str(tmp_path / "none.tflite")]) == 2
    assert "not a file" in capsys.readouterr().err


@pytest.mark.skipif(
    not os.environ.get("BEDSIDE_LEGACY_PYTHON"),
    reason="set BEDSIDE_LEGACY_PYTHON to a numpy<2 Python with tflite-runtime",
)
def test_bench_under_runtime_python(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "bench",
                str(MODELS / "dense_int8.tflite"),
                "--runs",
                "20",
                "--min-seconds",
                "0",
                "--json",
                "--runtime-python",
                os.environ["BEDSIDE_LEGACY_PYTHON"],
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["models"][0]["runtime"] == "tflite_runtime"


def test_bench_profile_prints_the_top_ops_and_writes_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, out = MODELS / "dominant_conv_int8.tflite", tmp_path / "bench.json"
    args = ["bench", str(model), "--runs", "10", "--min-seconds", "0", "--profile"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "QUANTIZE/DEQUANTIZE" in printed and "#1    CONV_2D" in printed
    profile = json.loads(out.read_text())["models"][0]["profile"]
    assert profile["top"][0] == 1 and len(profile["ops"]) == 5
