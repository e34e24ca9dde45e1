"""x86 vs aarch64: the benchmark workloads' int8 files on the emulated ARM device.

Brings nothing up itself: start the device first (`tests/devices/arm64.sh up STATE`), then

    python bench/arm64.py --state STATE --workdir /tmp/bedside-arm64-bench

Each workload (bench/workloads.py) is trained or reused, converted to full-integer int8
(sigmoid output, or logits with --logits; calibration on 256 training samples) and run on
its test split with `device_bench run`, on this host and on the device, through XNNPACK and
through the built-in kernels. Prints, per workload and kernel path, the largest difference
from the x86 host in output quantization steps and the agreement of predictions (threshold
0.5, or logit 0). qemu's timings mean nothing and are not reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipapp
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.workloads import prepare  # noqa: E402
from pipeline.config import RuntimeTarget  # noqa: E402
from pipeline.quantize.verification import run_on_runtime  # noqa: E402

PATHS = {RuntimeTarget.LITERT: [], RuntimeTarget.LITERT_NO_DELEGATES: ["--no-xnnpack"]}


def ssh(state: Path, command: str) -> str:
    return subprocess.run(
        ["ssh", "-F", str(state / "ssh_config"), "arm64", command],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout


def scp(state: Path, *args: str) -> None:
    subprocess.run(["scp", "-q", "-F", str(state / "ssh_config"), *args], check=True)


def int8_file(name: str, workdir: Path, logits: bool) -> tuple[Path, np.ndarray]:
    import keras

    from converters.tflite import logits_view, to_int8

    workload = prepare(name, workdir)
    if workload is None:
        raise SystemExit(f"{name}: its data is absent (set BEDSIDE_BREASTMNIST)")
    with np.load(workload.data, allow_pickle=False) as npz:
        images = {k: npz[k] for k in npz.files}
    x_train, x_test = images["train_images"], images["test_images"]
    if x_train.ndim == 3:  # 28x28 grayscale
        x_train, x_test = x_train[..., None], x_test[..., None]
    path = workdir / f"{name}.int8{'.logits' if logits else ''}.tflite"
    if not path.exists():
        model = keras.saving.load_model(workload.model)
        rng = np.random.default_rng(0)
        calibration = x_train[rng.choice(len(x_train), 256, replace=False)].astype(np.float32)
        if logits:
            with logits_view(model) as (view, _):
                path.write_bytes(to_int8(view, calibration))
        else:
            path.write_bytes(to_int8(model, calibration))
    return path, x_test.astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="arm64.sh's STATE_DIR")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--workloads", default="wdbc_mlp,breastmnist_cnn,mobilenet_v2_035")
    parser.add_argument(
        "--logits", action="store_true", help="the int8 files emit logits (the 'logits' recipe)"
    )
    args = parser.parse_args()
    threshold = 0.0 if args.logits else 0.5
    args.workdir.mkdir(parents=True, exist_ok=True)
    remote = ssh(args.state, "mktemp -d /tmp/bedside-bench.XXXXXX").strip()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "src")
            shutil.copytree(
                ROOT / "device_bench",
                source / "device_bench",
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            zipapp.create_archive(source, Path(tmp, "db.pyz"), main="device_bench.cli:main")
            scp(args.state, str(Path(tmp, "db.pyz")), f"arm64:{remote}/")
            for name in args.workloads.split(","):
                model, x = int8_file(name, args.workdir, args.logits)
                np.save(Path(tmp, "x.npy"), x)
                scp(args.state, str(model), str(Path(tmp, "x.npy")), f"arm64:{remote}/")
                hosts = {t: run_on_runtime(t, model, x) for t in PATHS}
                x86 = [out for out, _ in hosts.values()]
                assert all(out is not None for out in x86), hosts
                for target, flags in PATHS.items():
                    host, status = hosts[target]
                    out = f"{remote}/y.npz"
                    ssh(
                        args.state,
                        f"python3 {remote}/db.pyz run {remote}/{model.name} --input "
                        f"{remote}/x.npy --output {out} --overwrite --no-fallback "
                        + " ".join(flags),
                    )
                    scp(args.state, f"arm64:{out}", str(Path(tmp, "y.npz")))
                    with np.load(Path(tmp, "y.npz")) as npz:
                        arm = npz["outputs"].astype(np.float32)
                    scale = status["output"]["scale"]
                    row = {
                        "workload": name,
                        "output": "logits" if args.logits else "sigmoid",
                        "path": target.value,
                        "samples": len(x),
                        "max_steps": float(np.max(np.abs(arm - host)) / scale),
                        "outputs_differing": float(np.mean(arm != host)),
                        "agreement": float(np.mean((arm >= threshold) == (host >= threshold))),
                        "x86_paths_max_steps": float(np.max(np.abs(x86[0] - x86[1])) / scale),
                        "x86_paths_agreement": float(
                            np.mean((x86[0] >= threshold) == (x86[1] >= threshold))
                        ),
                    }
                    print(json.dumps(row), flush=True)
                    results.append(row)
    finally:
        ssh(args.state, f"rm -rf {remote}")
    (args.workdir / f"arm64{'-logits' if args.logits else ''}.json").write_text(
        json.dumps(results, indent=2)
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raise SystemExit(main())
