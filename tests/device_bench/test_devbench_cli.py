"""The command line: exit codes, messages, the JSON report and the run command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from device_bench import run_model
from device_bench.cli import main
from device_bench.worker import CRASH_ENV
from tests.device_bench.tflite_files import model_path

QUICK = ["--runs", "10", "--warmup", "1", "--min-seconds", "0.02"]

MODEL_KEYS = {
    "path",
    "status",
    "reason",
    "exit_status",
    "signal",
    "runtime",
    "runtime_version",
    "threads",
    "xnnpack",
    "note",
    "file_bytes",
    "input",
    "init_ms",
    "first_invoke_ms",
    "runs",
    "latency_ms",
    "memory",
    "ratio_to_first",
    "profile",
}
MEMORY_KEYS = {
    "rss_start_mb",
    "rss_after_import_mb",
    "rss_after_interpreter_mb",
    "rss_after_allocate_mb",
    "peak_rss_mb",
    "model_mb",
    "arena_bytes",
}


def test_json_report_has_the_schema_the_pipeline_reads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"

    code = main(
        [
            str(model_path("dense_int8")),
            str(model_path("dense_float32")),
            *QUICK,
            "--json",
            str(out),
        ]
    )

    assert code == 0
    report = json.loads(out.read_text())
    assert report["schema_version"] == 1
    assert (report["tool"], report["version"]) == ("device_bench", "0.1.0")
    assert {"python", "machine", "cpu_count"} <= set(report["host"])
    assert {
        "runs",
        "warmup",
        "min_seconds",
        "threads",
        "xnnpack",
        "cpu",
        "input",
        "compare",
    } <= set(report["settings"])
    assert report["settings"]["compare"] is True
    assert report["settings"]["runs"] == 10
    for model in report["models"]:
        assert MODEL_KEYS <= set(model)
        assert set(model["memory"]) == MEMORY_KEYS
        assert set(model["latency_ms"]) == {"min", "mean", "std", "p50", "p90", "p95", "p99", "max"}
        assert set(model["input"]) == {"shape", "dtype", "scale", "zero_point", "source"}
        assert model["status"] == "ok"
    assert report["models"][0]["ratio_to_first"] == {"p50": 1.0, "mean": 1.0}
    table = capsys.readouterr().out
    assert "dense_int8.tflite" in table and "p50 ms" in table


def test_json_to_stdout_and_explicit_bench_word(capsys) -> None:
    code = main(["bench", str(model_path("dense_float32")), *QUICK, "--json", "-"])

    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["models"][0]["status"] == "ok"
    assert "p50 ms" in captured.err


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.tflite", "does not exist"), ("model.onnx", "expected a .tflite")],
)
def test_bad_model_paths_exit_2_without_traceback(
    tmp_path: Path, capsys, name: str, message: str
) -> None:
    path = tmp_path / name
    if name.endswith(".onnx"):
        path.write_bytes(b"onnx")

    code = main([str(path), str(model_path("dense_float32"))])

    err = capsys.readouterr().err
    assert code == 2
    assert message in err and name in err
    assert "Traceback" not in err


def test_unreadable_input_file_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "samples.npy"
    bad.write_text("not numpy")

    code = main([str(model_path("dense_int8")), "--input", str(bad)])

    assert code == 2
    assert "samples.npy" in capsys.readouterr().err


def test_existing_json_needs_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    out.write_text("{}")

    assert main([str(model_path("dense_int8")), "--json", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_a_crash_exits_1_and_still_prints_the_others(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(CRASH_ENV, "load:SIGSEGV:dense_int8.tflite")

    code = main([str(model_path("dense_float32")), str(model_path("dense_int8")), *QUICK])

    out = capsys.readouterr().out
    assert code == 1
    rows = {line.split()[0].rsplit("/", 1)[-1]: line.split()[1] for line in out.splitlines()[2:4]}
    assert rows == {"dense_float32.tflite": "ok", "dense_int8.tflite": "crashed"}
    assert "SIGSEGV" in out


def test_help_exits_0(capsys) -> None:
    assert main(["--help"]) == 0
    assert "run MODEL" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0


@pytest.mark.parametrize("xnnpack", [True, False], ids=["xnnpack", "no-xnnpack"])
def test_run_writes_the_same_outputs_as_run_model(tmp_path: Path, capsys, xnnpack: bool) -> None:
    samples = np.random.default_rng(1).standard_normal((11, 12, 12, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", samples)
    flags = [] if xnnpack else ["--no-xnnpack"]

    code = main(
        [
            "run",
            str(model_path("conv_int8")),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npz"),
            "--status",
            str(tmp_path / "s.json"),
            *flags,
        ]
    )

    assert code == 0
    expected = run_model(model_path("conv_int8"), samples, xnnpack=xnnpack)
    with np.load(tmp_path / "y.npz") as written:
        assert written["outputs"].dtype == np.float32
        np.testing.assert_array_equal(written["raw_outputs"], expected.raw_outputs)
        np.testing.assert_array_equal(written["outputs"], expected.outputs)
    status = json.loads((tmp_path / "s.json").read_text())
    assert json.loads(capsys.readouterr().out) == status
    assert status["status"] == "ok" and status["xnnpack"] is xnnpack
    assert status["runtime"] and status["runtime_version"]
    assert status["output"]["dtype"] == "int8" and status["output"]["scale"] > 0


def test_run_with_a_wrong_input_shape_exits_2(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 3), dtype=np.float32))

    code = main(
        [
            "run",
            str(model_path("dense_int8")),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npz"),
        ]
    )

    captured = capsys.readouterr()
    assert code == 2
    assert "expects (N, 16)" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "y.npz").exists()


def test_run_refuses_to_overwrite_outputs(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 16), dtype=np.float32))
    (tmp_path / "y.npz").write_bytes(b"keep")

    code = main(
        [
            "run",
            str(model_path("dense_int8")),
            "--input",
            str(tmp_path / "x.npy"),
            "--output",
            str(tmp_path / "y.npz"),
        ]
    )

    assert code == 2
    assert (tmp_path / "y.npz").read_bytes() == b"keep"


def test_missing_python_exits_2(tmp_path: Path, capsys) -> None:
    code = main([str(model_path("dense_int8")), "--python", str(tmp_path / "bin" / "python")])

    assert code == 2
    assert "is not an executable file" in capsys.readouterr().err


def test_info_describes_the_machine_and_its_runtime(capsys) -> None:
    import platform

    assert main(["info"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["machine"] == platform.machine() and doc["python"] == platform.python_version()
    assert doc["numpy"] == np.__version__ and doc["cpu_count"] >= 1
    assert doc["runtime"] == "ai_edge_litert" and doc["runtime_error"] is None
