"""Microcontrollers: the `tflm` verification target, arena/flash gates, report.md and
`export-c`. Those that run TFLM skip without the [micro] extra (tflite-micro)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.config import GatesConfig, RuntimeTarget
from pipeline.quantize.verification import RuntimeCheck, micro_verdict
from pipeline.release import gates
from pipeline.release.report.schema import BuildReport
from pipeline.release.report.tables import micro_line, variant_rows

MODELS = Path(__file__).resolve().parents[2] / "device_bench" / "models"


def _micro(**fields: Any) -> dict[str, Any]:
    doc = {
        "status": "ok",
        "reason": None,
        "runtime_version": "0.dev",
        "arena_bytes": 43008,
        "arena_estimate_bytes": 42032,
        "arena_crashed_at": [],
        "flash_bytes": 20480,
        "flash_includes": "the flatbuffer",
        "ops": ["CONV_2D", "ADD"],
        "missing_ops": [],
        "float_ops": [],
    }
    return {**doc, **fields}


def _checks() -> list[RuntimeCheck]:
    return [
        RuntimeCheck(RuntimeTarget.LITERT, "ok", None),
        RuntimeCheck(RuntimeTarget.TFLM, "ok", None),
    ]


@pytest.mark.parametrize(
    ("micro", "named"),
    [
        (_micro(float_ops=["FULLY_CONNECTED"]), "FULLY_CONNECTED"),
        (_micro(status="refused", missing_ops=["DENSIFY"]), "DENSIFY"),
    ],
)
def test_float_or_missing_op_refuses_the_tflm_target(micro: dict[str, Any], named: str) -> None:
    litert, tflm = micro_verdict(_checks(), micro)
    assert litert.status == "ok"
    assert tflm.status == "refused" and named in (tflm.reason or "")


def test_clean_micro_keeps_the_checks() -> None:
    assert micro_verdict(_checks(), _micro()) == _checks()
    assert micro_verdict(_checks(), None) == _checks()


def _report(micro: dict[str, Any] | None) -> dict[str, Any]:
    quantization: dict[str, Any] = {"verification": []}
    if micro is not None:
        quantization["micro"] = micro
    return {"metrics": {}, "artifacts": {"int8": {"bytes": 20480}}, "quantization": quantization}


def test_flash_gate_reads_the_shipped_file() -> None:
    (check,) = gates.evaluate_limits(_report(None), GatesConfig(max_flash_kb=19))
    assert not check.passed and check.measured == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("limits", "passed"),
    [
        ({"max_arena_kb": 42.0, "max_flash_kb": 20.0}, (True, True)),
        ({"max_arena_kb": 41.9, "max_flash_kb": 19.9}, (False, False)),
    ],
)
def test_arena_and_flash_gates(limits: dict[str, float], passed: tuple[bool, bool]) -> None:
    checks = gates.evaluate_limits(_report(_micro()), GatesConfig(**limits))
    by_name = {c.name: c for c in checks}
    assert (by_name["max_arena_kb"].passed, by_name["max_flash_kb"].passed) == passed
    assert by_name["max_arena_kb"].measured == pytest.approx(42.0)


@pytest.mark.parametrize("micro", [None, _micro(status="refused", arena_bytes=None)])
def test_arena_gate_fails_when_tflm_did_not_measure(micro: dict[str, Any] | None) -> None:
    (check,) = gates.evaluate_limits(_report(micro), GatesConfig(max_arena_kb=100))
    assert not check.passed and check.measured is None
    assert ("[micro]" if micro is None else "refused") in check.detail


def test_report_shows_arena_and_flash_next_to_size() -> None:
    doc = {
        "artifacts": {"int8": {"bytes": 20480, "sha256": "0", "path": "model_int8.tflite"}},
        "quantization": {"micro": _micro()},
        "metrics": {},
        "bench": {},
    }
    report = BuildReport.coerce(doc)
    (row,) = variant_rows(report)
    assert row[1] == "20.0 KB (TFLM arena 42.0 KB, flash 20.0 KB)"
    line = micro_line(report) or ""
    assert "arena 43008 bytes" in line and "estimate 42032" in line


def test_export_c_needs_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-c", str(tmp_path / "missing.tflite"), "--out", str(tmp_path)]) == 2
    assert "expected a .tflite file" in capsys.readouterr().err


def test_export_c_writes_compilable_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tflite_micro")
    from device_bench import micro_report

    model = MODELS / "conv_int8.tflite"
    out = tmp_path / "c"
    assert main(["export-c", str(model), "--out", str(out), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    header = (out / "conv_int8.h").read_text()
    arena = int(re.search(r"#define CONV_INT8_ARENA_BYTES (\d+)", header).group(1))  # type: ignore[union-attr]
    assert arena == written["arena_bytes"] == micro_report(str(model), runs=1).arena_bytes
    assert "(resolver).AddConv2D();" in header and "#define CONV_INT8_OP_COUNT 7" in header
    assert "#define CONV_INT8_INPUT_0_ZERO_POINT" in header
    if shutil.which("cc"):
        subprocess.run(["cc", "-std=c11", "-c", str(out / "conv_int8.c"), "-o",
                        str(tmp_path / "m.o")], check=True)  # fmt: skip
    assert main(["export-c", str(model), "--out", str(out)]) == 2  # no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export-c", str(MODELS / "sparse_int8.tflite"), "--out", str(out)]) == 2
    assert "DENSIFY" in capsys.readouterr().err


@pytest.mark.slow
def test_build_verifies_on_tflm_and_gates_the_arena(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With [micro] a build verifies the int8 file on TFLM; --require-runtime tflm passes on
    the default model, and max_arena_kb below the measured arena fails the build (exit 1)."""
    pytest.importorskip("tflite_micro")
    out = tmp_path / "out"
    argv = ["build", "--no-bench", "--out", str(out)]
    argv += ["--require-runtime", "tflm", "--gate", "max_arena_kb=0.5"]
    assert main(argv) == 1
    report = json.loads((out / "report.json").read_text())
    check = {c["target"]: c for c in report["quantization"]["verification"]}["tflm"]
    assert check["status"] == "ok", check
    assert check["agreement_vs_primary"] >= 0.99
    micro = report["quantization"]["micro"]
    assert micro["arena_bytes"] >= micro["arena_estimate_bytes"] > 0
    # the verified file; the shipped one also holds the embedded manifest
    assert 0 < micro["flash_bytes"] <= report["artifacts"]["int8"]["bytes"]
    failed = [c["name"] for c in report["gates"]["checks"] if not c["passed"]]
    assert failed == ["max_arena_kb"]
    assert "TFLM arena" in (out / "report.md").read_text()
    assert "max_arena_kb" in capsys.readouterr().err
