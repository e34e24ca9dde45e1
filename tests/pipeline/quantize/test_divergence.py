"""Where runtimes part ways: `verification[i].divergence` and `inspect --compare`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import RuntimeTarget
from pipeline.quantize.verification import RuntimeCheck, verify

RESIZE = Path(__file__).resolve().parents[2] / "device_bench" / "models" / "resize_int8.tflite"


def _pixels(count: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (count, 12, 12, 3)).astype(np.float32)


def test_a_mismatch_names_the_first_op_that_parts_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.quantize import verification

    real = verification.run_on_runtime

    def shifted(target: RuntimeTarget, *args: object) -> tuple[np.ndarray | None, dict]:
        outputs, info = real(target, *args)  # type: ignore[arg-type]
        if target is RuntimeTarget.LITERT_NO_DELEGATES and outputs is not None:
            outputs = outputs + 0.25  # its outputs now differ: a mismatch to explain
        return outputs, info

    monkeypatch.setattr(verification, "run_on_runtime", shifted)
    x = _pixels()
    checks = verify(
        RESIZE,
        x,
        np.zeros((len(x), 1), np.float32),
        1 / 256,
        lambda outputs: outputs[:, 0] > 0.5,
        (RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES),
    )
    primary, other = checks
    assert primary.status == "ok" and primary.divergence is None
    assert "divergence" not in primary.to_json()
    assert other.status == "mismatch"
    assert other.divergence is not None
    assert (other.divergence["index"], other.divergence["op"]) == (2, "RESIZE_BILINEAR")
    assert other.divergence["max_steps"] > 2
    assert other.to_json()["divergence"] == other.divergence


def test_a_check_without_divergence_keeps_its_keys() -> None:
    check = RuntimeCheck(RuntimeTarget.LITERT, "ok", None)
    assert "divergence" not in check.to_json() and "device" not in check.to_json()


def test_inspect_compare_prints_each_op_and_the_first_divergence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, _pixels())
    argv = ["inspect", str(RESIZE), "--compare", "litert-no-delegates", "litert"]
    assert main([*argv, "--data", str(data), "--samples", "8"]) == 0
    out = capsys.readouterr().out
    assert "RESIZE_BILINEAR" in out and "<- first > 2 steps" in out
    assert "first divergence: op #2 RESIZE_BILINEAR" in out
    assert main([*argv, "--data", str(data), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [op["index"] for op in doc["ops"]] == list(range(7))
    assert doc["divergence"]["op"] == "RESIZE_BILINEAR"


def test_inspect_compare_refuses_an_unknown_runtime_and_missing_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "x.npy"
    np.save(data, _pixels(2))
    argv = ["inspect", str(RESIZE), "--compare", "litert", "tflite-runtime"]
    assert main([*argv, "--data", str(data)]) == 2
    assert "--compare 'tflite-runtime'" in capsys.readouterr().err
    assert main(["inspect", str(RESIZE), "--compare", "litert", "litert-no-delegates"]) == 2
    assert "--data" in capsys.readouterr().err


def test_a_missed_int8_budget_names_where_int8_leaves_float(tmp_path: Path) -> None:
    from pipeline.quantize.verification import float_divergence

    x = _pixels()
    float_file = RESIZE.with_name("resize_float32.tflite")
    checks = [
        RuntimeCheck(RuntimeTarget.LITERT, "ok", None),
        RuntimeCheck(RuntimeTarget.LITERT_NO_DELEGATES, "ok", None),
    ]
    primary, other = float_divergence(RESIZE, float_file, x, checks)
    assert other.divergence is None and primary.divergence is not None
    # int8 leaves float beyond 2 of its steps first at the conv after the resize
    assert (primary.divergence["index"], primary.divergence["op"]) == (3, "CONV_2D")
    assert primary.divergence["against"] == "pruned_float32"
    assert primary.divergence["max_steps"] > 2
    # the file against itself, or no float file: nothing to name
    assert float_divergence(RESIZE, RESIZE, x, checks) == checks
    assert float_divergence(RESIZE, tmp_path / "none.tflite", x, checks) == checks
