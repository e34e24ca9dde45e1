"""The int8 files on an emulated aarch64 bedside device, compared with the x86 host.

ARM runs other XNNPACK and reference kernel code paths than x86, so a file verified on the
build host is not proven on an ARM board. `tests/devices/arm64.sh` brings up a Debian arm64
userland under qemu-user with an sshd on 127.0.0.1; this test ships device_bench there as a
zipapp with plain ssh/scp, runs `device_bench run` on the device and on the host on the same
inputs, and judges the device by the pipeline's bounds for a second runtime
(`pipeline.quantize.verification`), relaxed where the two x86 runtimes already disagree more. qemu's
timings mean nothing; only outputs are compared.

Runs only with BEDSIDE_ARM64=1 (`.ci/run` sets it): the first run builds the root filesystem
(minutes), later runs reuse its cached tarball. Skipped where the machine cannot run it
(not root, no qemu-user-static, binfmt_misc or mmdebstrap).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import zipapp
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.config import RuntimeTarget
from pipeline.quantize.verification import (
    MAX_STEPS_VS_PRIMARY,
    MIN_AGREEMENT_VS_PRIMARY,
    run_on_runtime,
)

ENABLE = "BEDSIDE_ARM64"
SCRIPT = Path(__file__).with_name("arm64.sh")
PACKAGE = Path(__file__).resolve().parents[2] / "device_bench"
UNAVAILABLE = 3  # arm64.sh: this machine cannot run the device
SHAPE = (28, 28, 1)
SAMPLES = 128  # test inputs run on both machines
TRAIN_SAMPLES = 256
EPOCHS = 3
CALIBRATION_SAMPLES = 64
# Relaxed bounds where the x86 runtimes disagree (see the comparison test); measured here:
# MobileNetV2 25 steps and 3 flips of 128 on aarch64 vs 20 steps and 2 flips between x86's
# runtimes. Training is not bit-reproducible across machines, hence the room.
STEPS_SLACK = 2.0
FLIPS_SLACK = 4

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get(ENABLE) != "1",
        reason=f"set {ENABLE}=1 to build and run the emulated aarch64 device (root, "
        "qemu-user-static, mmdebstrap; minutes the first time)",
    ),
]


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo if line.split()[4].startswith(prefix)]


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The state directory of a running device (devices.toml, ssh_config, keys)."""
    state = tmp_path_factory.mktemp("arm64")
    up = subprocess.run(
        ["bash", str(SCRIPT), "up", str(state)], capture_output=True, text=True, timeout=3600
    )
    try:
        if up.returncode == UNAVAILABLE:
            pytest.skip(up.stderr.strip().splitlines()[-1])
        assert up.returncode == 0, f"arm64.sh up failed:\n{up.stderr[-3000:]}"
        yield state
    finally:
        down = subprocess.run(
            ["bash", str(SCRIPT), "down", str(state)], capture_output=True, text=True, timeout=120
        )
        # The rootfs is a copy of the cached tarball: removed only once nothing is mounted there.
        if down.returncode == 0 and not _mounts_under(state):
            shutil.rmtree(state / "rootfs", ignore_errors=True)
        assert down.returncode == 0, f"arm64.sh down failed:\n{down.stderr}"


def _ssh(state: Path, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(state / "ssh_config"), "arm64", command],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=True,
    )


def _scp(state: Path, *args: str) -> None:
    subprocess.run(
        ["scp", "-q", "-F", str(state / "ssh_config"), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
        check=True,
    )


def _inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale 28x28 images in 0..255 (a blurred random field) and their class: bright
    (1) or dark (0), by a margin a short training learns, so the models are confident."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n).astype(np.float32)
    coarse = rng.uniform(0.0, 160.0, size=(n, 7, 7, 1)) + 95.0 * y[:, None, None, None]
    x = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2).astype(np.float32)
    return x, y


def _mobilenet_v2() -> Any:
    """MobileNetV2-0.35 as in bench/workloads.py, at 32x32 to stay small: gray 28x28 input
    resized inside, depthwise stages with residual Adds and ReLU6, one sigmoid unit."""
    import keras

    inputs = keras.Input(SHAPE, name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Resizing(32, 32, name="resize")(x)
    x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    backbone = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, pooling="avg"
    )
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(backbone(x))
    return keras.Model(inputs, outputs, name="mobilenet_v2_035")


def _settle_batchnorm_fast(model: Any) -> None:
    """A short training settles BatchNorm's inference statistics only with a low momentum."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5
        elif hasattr(layer, "layers"):  # a nested model (the MobileNetV2 backbone)
            _settle_batchnorm_fast(layer)


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A residual and a MobileNetV2-style full-integer int8 .tflite emitting logits, trained
    briefly on the host (trained activations, not random ones, are what a device receives)."""
    import keras

    from converters.tflite import logits_view, to_int8
    from tests import models

    directory = tmp_path_factory.mktemp("int8")
    x, y = _inputs(TRAIN_SAMPLES, seed=0)
    files = {}
    for name, build in {"residual": models.residual, "mobilenet_v2": _mobilenet_v2}.items():
        keras.utils.set_random_seed(0)
        model = build()
        _settle_batchnorm_fast(model)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
        model.fit(x, y, epochs=EPOCHS, batch_size=32, verbose=0)
        files[name] = directory / f"{name}.tflite"
        # Logits out (the pipeline's 'logits' recipe): a confident model's sigmoid output
        # saturates at its end levels, where every runtime agrees trivially.
        with logits_view(model) as (view, _):
            files[name].write_bytes(to_int8(view, x[:CALIBRATION_SAMPLES]))
    return files


@pytest.fixture(scope="module")
def zipapp_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """device_bench packed as one file, as the host ships it to a device."""
    source = tmp_path_factory.mktemp("zipapp-src")
    shutil.copytree(PACKAGE, source / "device_bench", ignore=shutil.ignore_patterns("__pycache__"))
    target = source.parent / "device_bench.pyz"
    zipapp.create_archive(source, target, main="device_bench.cli:main")
    return target


@pytest.fixture(scope="module")
def shipped(
    device: Path,
    zipapp_file: Path,
    int8_models: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """A fresh directory on the device holding the zipapp, the models and the inputs."""
    x = tmp_path_factory.mktemp("inputs") / "x.npy"
    np.save(x, _inputs(SAMPLES, seed=1)[0])
    remote = _ssh(device, "mktemp -d /tmp/bedside.XXXXXX").stdout.strip()
    _scp(device, str(zipapp_file), str(x), *map(str, int8_models.values()), f"arm64:{remote}/")
    return remote


def test_device_is_aarch64_and_runs_the_zipapp(device: Path, shipped: str) -> None:
    machine = _ssh(device, "python3 -c 'import platform; print(platform.machine())'")
    assert machine.stdout.strip() == "aarch64"
    help_text = _ssh(device, f"python3 {shipped}/device_bench.pyz run --help").stdout
    assert "--output" in help_text
    # The bench (a child process per model, importing device_bench from the zipapp) reports
    # the device's machine.
    report = json.loads(
        _ssh(
            device,
            f"cd {shipped} && python3 device_bench.pyz residual.tflite --runs 3 --warmup 1 "
            "--min-seconds 0 --json -",
        ).stdout
    )
    assert report["host"]["machine"] == "aarch64"
    assert report["models"][0]["status"] == "ok"


def _device_run(
    state: Path, remote: str, name: str, xnnpack: bool, local: Path
) -> tuple[np.ndarray, dict[str, Any]]:
    out = f"{remote}/{name}-{int(xnnpack)}.npz"
    command = [
        "python3",
        f"{remote}/device_bench.pyz",
        "run",
        f"{remote}/{name}.tflite",
        "--input",
        f"{remote}/x.npy",
        "--output",
        out,
        "--overwrite",
        "--no-fallback",
        "--runtime",
        "ai_edge_litert",
    ] + ([] if xnnpack else ["--no-xnnpack"])
    status = json.loads(_ssh(state, shlex.join(command)).stdout)
    _scp(state, f"arm64:{out}", str(local))
    with np.load(local, allow_pickle=False) as npz:
        return npz["outputs"].astype(np.float32), status


def _steps(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))) / scale)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a >= 0.0) == (b >= 0.0)))  # one logit: the sigmoid's 0.5


@pytest.mark.parametrize("name", ["residual", "mobilenet_v2"])
def test_int8_outputs_agree_with_the_x86_host(
    device: Path, shipped: str, int8_models: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """Each kernel path (XNNPACK, built-in kernels) on aarch64 against the same path on x86.

    Bounds: the pipeline's for a second runtime (2 quantization steps, 99% agreement of
    predictions), relaxed where the two x86 runtimes already disagree more (twice their
    steps, their agreement less 4 of 128 predictions): one-step rounding differences inside
    a model grow on the way out (MobileNetV2's x86 runtimes differ by 20 logit steps here),
    and aarch64 runs other kernels again. A device computing something else agrees on about
    half the predictions and fails.
    """
    x, y = _inputs(SAMPLES, seed=1)
    host = {}
    for target in (RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES):
        host[target], status = run_on_runtime(target, int8_models[name], x)
        assert host[target] is not None, status
    # A trained, confident model: agreement on its predictions means something.
    assert np.mean((host[RuntimeTarget.LITERT][:, 0] >= 0.0) == (y == 1)) >= 0.8
    scale = status["output"]["scale"]
    x86_steps = _steps(*host.values(), scale)
    x86_agreement = _agreement(*host.values())
    for target, xnnpack in (
        (RuntimeTarget.LITERT, True),
        (RuntimeTarget.LITERT_NO_DELEGATES, False),
    ):
        arm, arm_status = _device_run(device, shipped, name, xnnpack, tmp_path / f"{xnnpack}.npz")
        assert arm_status["status"] == "ok" and arm_status["xnnpack"] == xnnpack
        assert arm_status["runtime_version"] == status["runtime_version"]
        assert arm.shape == host[target].shape == (SAMPLES, 1)
        steps, agreement = _steps(arm, host[target], scale), _agreement(arm, host[target])
        # pytest -s shows the numbers (BENCHMARKS.md quotes them).
        print(
            f"\narm64 {name} {target.value}: max {steps:g} steps vs x86, agreement "
            f"{agreement:.4f}, {np.mean(arm != host[target]):.1%} of outputs differ "
            f"(x86 {RuntimeTarget.LITERT.value} vs {RuntimeTarget.LITERT_NO_DELEGATES.value}: "
            f"{x86_steps:g} steps, agreement {x86_agreement:.4f})"
        )
        assert steps <= max(MAX_STEPS_VS_PRIMARY, STEPS_SLACK * x86_steps)
        assert agreement >= min(MIN_AGREEMENT_VS_PRIMARY, x86_agreement) - FLIPS_SLACK / SAMPLES


def test_the_pipeline_verifies_and_benches_on_the_device(
    device: Path, int8_models: dict[str, Path], tmp_path: Path
) -> None:
    """The pipeline's own SSH client on the emulated board: `bench --devices ... --device
    arm64` reports an aarch64 machine marked emulated, and the build's verification path
    runs the residual int8 file there and judges it `ok` against the x86 host."""
    from converters.inspection import inspect_tflite
    from pipeline.cli import main
    from pipeline.config.inventory import load_inventory
    from pipeline.quantize.verification import target_name, verify

    inventory = device / "devices.toml"
    report = tmp_path / "bench.json"
    argv = ["bench", str(int8_models["residual"]), "--devices", str(inventory)]
    argv += ["--device", "arm64", "--runs", "3", "--warmup", "1", "--min-seconds", "0"]
    assert main([*argv, "--json", str(report)]) == 0
    doc = json.loads(report.read_text())
    assert doc["device"]["name"] == "arm64" and doc["device"]["machine"] == "aarch64"
    assert doc["emulated"] is True and doc["device"]["emulated"] is True
    assert doc["models"][0]["status"] == "ok"

    x, _ = _inputs(SAMPLES, seed=1)
    reference, status = run_on_runtime(RuntimeTarget.LITERT, int8_models["residual"], x)
    assert reference is not None, status
    info = inspect_tflite(int8_models["residual"])
    checks = verify(
        int8_models["residual"],
        x,
        reference,
        float(info.tensors[info.outputs[0]].scale[0]),
        lambda outputs: (outputs[:, 0] >= 0.0).astype(np.int64),
        (RuntimeTarget.LITERT,),
        devices=(load_inventory(inventory)["arm64"],),
    )
    by_target = {target_name(c.target): c for c in checks}
    assert by_target["arm64"].status == "ok", by_target["arm64"].to_json()
    assert by_target["arm64"].to_json()["device"]["machine"] == "aarch64"
