"""Mutated .tflite files: device_bench must classify every one and never die itself."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from device_bench import BenchSettings, Status, check_models
from tests.device_bench.tflite_files import MODELS_DIR

SEED = 20240601
CASES_PER_KIND = 100  # x 4 kinds = 400 cases


def _mutations(original: bytes, rng: np.random.Generator) -> dict[str, bytes]:
    size = len(original)
    # One flipped byte often survives flatbuffer verification and reaches
    # allocation or invoke; several rarely do.
    one_flip = bytearray(original)
    one_flip[int(rng.integers(0, size))] ^= 1 << int(rng.integers(0, 8))
    flipped = bytearray(original)
    for position in rng.integers(0, size, size=int(rng.integers(1, 9))):
        flipped[position] ^= int(rng.integers(1, 256))
    zeroed = bytearray(original)
    start = int(rng.integers(0, size))
    zeroed[start : start + int(rng.integers(1, 65))] = b"\0" * len(zeroed[start : start + 64])
    truncated = original[: int(rng.integers(0, size))]
    return {
        "flip1": bytes(one_flip),
        "flip": bytes(flipped),
        "zero": bytes(zeroed[:size]),
        "truncate": truncated,
    }


def _make_cases(directory: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    originals = sorted(MODELS_DIR.glob("*.tflite"))
    cases = []
    for index in range(CASES_PER_KIND):
        source = originals[index % len(originals)]
        for kind, content in _mutations(source.read_bytes(), rng).items():
            case = directory / f"{index:03d}_{kind}_{source.name}"
            case.write_bytes(content)
            cases.append(case)
    return cases


def test_every_mutated_model_is_measured_refused_or_crashed(tmp_path: Path) -> None:
    cases = _make_cases(tmp_path)
    controls = sorted(MODELS_DIR.glob("*.tflite"))
    start = time.monotonic()

    results = check_models([*controls, *cases], BenchSettings(), timeout_s=30.0)

    elapsed = time.monotonic() - start
    assert len(cases) >= 400
    assert [r.path for r in results] == [str(p) for p in [*controls, *cases]]
    by_name = {Path(r.path).name: r for r in results[: len(controls)]}
    assert by_name["dense_int8.tflite"].status is Status.OK
    assert by_name["two_outputs.tflite"].status is Status.REFUSED
    outcomes = Counter(r.status for r in results[len(controls) :])
    assert set(outcomes) <= {Status.OK, Status.REFUSED, Status.CRASHED}, outcomes
    for result in results:
        if result.status is not Status.OK:
            assert result.reason, result
        if result.status is Status.CRASHED:
            assert result.exit_status is not None, result
    # Truncations below the flatbuffer header can never load.
    assert outcomes[Status.REFUSED] > 0
    print(f"fuzz: {len(cases)} cases in {elapsed:.1f} s: {dict(outcomes)}")
