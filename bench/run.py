"""Where we stand: size, AUROC, latency and memory of every variant, side by side.

For each workload (bench/workloads.py) this runs the real `bedside-lite build` at sparsity
0, 0.5, 0.8 and 0.9 (with a short fine-tuning), converts the same Keras model the plain way
a user would without us (the "hand-made" TFLite PTQ baseline), evaluates every file on the
test split, then times all files of the workload in ONE interleaved device_bench run per
setting (1 thread with XNNPACK, 1 thread without, and the int8 files on tflite-runtime 2.14
when `--legacy-python` names a numpy<2 Python that has it). Ratios are to float32 of the
same run. Finally the default build is timed as a whole process, stage by stage.

    PYTHONPATH=. python bench/run.py [--workloads NAME ...] [--legacy-python PATH]
                                     [--json results.json] [--markdown table.md]

A benchmark, not a test: about 10-15 minutes on two cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import WORKLOADS, Workload, prepare  # noqa: E402

SPARSITIES = (0.0, 0.5, 0.8, 0.9)


def build(workload: Workload, sparsity: float, out: Path) -> dict[str, Any]:
    """Runs `bedside-lite build` in-process and returns its report."""
    from pipeline.cli import main

    argv = [
        "build",
        "--model",
        str(workload.model),
        "--data",
        str(workload.data),
        "--out",
        str(out),
        "--sparsity",
        str(sparsity),
        "--no-bench",
        "--overwrite",
        "--positive-class",
        str(workload.positive_class),
    ]
    if sparsity > 0:
        argv += ["--finetune-epochs", str(workload.finetune_epochs)]
    code = main(argv)
    if code != 0:
        raise SystemExit(f"build of {workload.name} at sparsity {sparsity} exited {code}")
    return json.loads((out / "report.json").read_text())


def handmade_int8(workload: Workload, out: Path) -> dict[str, Any]:
    """Plain TFLite full-integer PTQ as documented, calibrated on the first 100 train
    samples; what a user gets without the pipeline."""
    import keras
    import tensorflow as tf

    from device_bench.runner import run_model
    from pipeline.evaluate.metrics import evaluate, probabilities
    from pipeline.models import output_kind

    model = keras.models.load_model(workload.model)
    with np.load(workload.data) as d:
        x_train, x_test, y_test = d["train_images"], d["test_images"], d["test_labels"]
    shape = tuple(model.inputs[0].shape[1:])
    x_train = x_train.astype(np.float32).reshape((-1, *shape))
    x_test = x_test.astype(np.float32).reshape((-1, *shape))

    def representative() -> Any:
        for i in range(100):
            yield [x_train[i : i + 1]]

    try:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        how = "from_keras_model"
    except Exception:  # noqa: BLE001 - Keras 3 models often need the SavedModel route
        converter = None
    tmp = tempfile.mkdtemp(prefix="handmade-")
    if converter is None:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        how = "export + from_saved_model"
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        data = converter.convert()
    except Exception:  # noqa: BLE001
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter2 = tf.lite.TFLiteConverter.from_saved_model(tmp)
        for attr in (
            "optimizations",
            "representative_dataset",
            "inference_input_type",
            "inference_output_type",
        ):
            setattr(converter2, attr, getattr(converter, attr))
        converter2.target_spec.supported_ops = converter.target_spec.supported_ops
        data = converter2.convert()
        how = "export + from_saved_model"
    path = out / "handmade_int8.tflite"
    path.write_bytes(data)
    outputs = run_model(path, x_test).outputs
    metrics = evaluate(
        probabilities(outputs, output_kind(model)), y_test, positive_class=workload.positive_class
    )
    return {"path": path, "metrics": metrics.values, "how": how}


def _env() -> dict[str, str]:
    """This checkout importable by any Python (a legacy-runtime venv too), quiet TF logs."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}


def time_files(
    paths: list[Path], *, xnnpack: bool, python: str | None, runs: int, min_seconds: float
) -> list[dict[str, Any]]:
    """One interleaved device_bench run over `paths` (compare mode), 1 thread."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp, "bench.json")
        cmd = [
            python or sys.executable,
            "-m",
            "device_bench",
            *map(str, paths),
            "--runs",
            str(runs),
            "--warmup",
            "5",
            "--min-seconds",
            str(min_seconds),
            "--threads",
            "1",
            "--json",
            str(report),
        ]
        if not xnnpack:
            cmd.append("--no-xnnpack")
        subprocess.run(cmd, env=_env(), capture_output=True, check=False)
        if not report.exists():
            return [{"status": "error"} for _ in paths]
        return json.loads(report.read_text())["models"]


def run_workload(workload: Workload, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    reports = {s: build(workload, s, workdir / f"s{s:g}") for s in SPARSITIES}
    handmade = handmade_int8(workload, workdir)
    base = reports[0.0]
    variants: dict[str, dict[str, Any]] = {
        "float32": {
            "path": workdir / "s0" / "model_float32.tflite",
            "metrics": base["metrics"]["float32"],
        },
        "pruned_float32 (0.5)": {
            "path": workdir / "s0.5" / "model_pruned_float32.tflite",
            "metrics": reports[0.5]["metrics"]["pruned_float32"],
        },
        "int8 (pipeline)": {
            "path": workdir / "s0" / "model_int8.tflite",
            "metrics": base["metrics"]["int8"],
            "recipe": base["quantization"].get("recipe"),
        },
    }
    for s in SPARSITIES[1:]:
        variants[f"pruned int8 ({s:g})"] = {
            "path": workdir / f"s{s:g}" / "model_int8.tflite",
            "metrics": reports[s]["metrics"]["int8"],
            "achieved_sparsity": reports[s]["pruning"]["achieved_sparsity"],
        }
    variants["int8 (hand-made PTQ)"] = {
        "path": handmade["path"],
        "metrics": handmade["metrics"],
        "how": handmade["how"],
    }
    paths = [v["path"] for v in variants.values()]
    timed = {
        "xnnpack": time_files(
            paths, xnnpack=True, python=None, runs=args.runs, min_seconds=args.min_seconds
        ),
        "no_xnnpack": time_files(
            paths, xnnpack=False, python=None, runs=args.runs, min_seconds=args.min_seconds
        ),
    }
    if args.legacy_python:
        legacy_names = ["float32", "int8 (pipeline)", "int8 (hand-made PTQ)"]
        legacy = time_files(
            [variants[n]["path"] for n in legacy_names],
            xnnpack=True,
            python=args.legacy_python,
            runs=args.runs,
            min_seconds=args.min_seconds,
        )
        for name, entry in zip(legacy_names, legacy, strict=True):
            variants[name]["tflite_runtime"] = entry
    for key, entries in timed.items():
        for v, entry in zip(variants.values(), entries, strict=True):
            v[key] = entry
    for v in variants.values():
        raw = Path(v["path"]).read_bytes()
        v["bytes"], v["gzip_bytes"] = len(raw), len(gzip.compress(raw, 9))
        v["path"] = str(v["path"])
    return {
        "name": workload.name,
        "variants": variants,
        "parameters": base["model"]["parameters"],
        "build_seconds": {f"{s:g}": r["timings_s"]["total"] for s, r in reports.items()},
    }


def time_default_build(workdir: Path) -> dict[str, Any]:
    """The README's main job, as a whole process."""
    out = workdir / "default"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--out", str(out), "--overwrite"],
        capture_output=True,
        check=True,
        env=_env(),
    )
    wall = time.perf_counter() - start
    report = json.loads((out / "report.json").read_text())
    return {
        "wall_s": round(wall, 1),
        "stages_s": report["timings_s"],
        "auroc": {k: report["metrics"][k]["auroc"] for k in report["metrics"]},
    }


def _p50(entry: dict[str, Any] | None) -> float | None:
    if not entry or entry.get("status") != "ok":
        return None
    return float(entry["latency_ms"]["p50"])


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _f(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for w in result["workloads"]:
        v = w["variants"]
        f32 = v["float32"]
        lines += [
            f"### {w['name']} ({w['parameters']:,} parameters)",
            "",
            "| variant | bytes | size vs f32 | gzip | gzip vs f32 | AUROC | sens | spec | "
            "p50 ms XNNPACK | speedup | p99 ms | p50 ms no XNNPACK | speedup | "
            "p50 ms tflite-runtime 2.14 | speedup | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in v.items():
            m = row["metrics"]
            x, nx, lg = row.get("xnnpack"), row.get("no_xnnpack"), row.get("tflite_runtime")
            p99 = x["latency_ms"]["p99"] if x and x.get("status") == "ok" else None
            rss = x["memory"]["peak_rss_mb"] if x and x.get("status") == "ok" else None
            lines.append(
                f"| {name} | {row['bytes']:,} | {row['bytes'] / f32['bytes']:.2f} | "
                f"{row['gzip_bytes']:,} | {row['gzip_bytes'] / f32['gzip_bytes']:.2f} | "
                f"{_f(m.get('auroc'))} | {_f(m.get('sensitivity'), '.3f')} | "
                f"{_f(m.get('specificity'), '.3f')} | {_f(_p50(x))} | "
                f"{_ratio(_p50(f32.get('xnnpack')), _p50(x))} | {_f(p99)} | {_f(_p50(nx))} | "
                f"{_ratio(_p50(f32.get('no_xnnpack')), _p50(nx))} | {_f(_p50(lg))} | "
                f"{_ratio(_p50(f32.get('tflite_runtime')), _p50(lg))} | {_f(rss, '.1f')} |"
            )
        lines.append("")
    d = result.get("default_build")
    if d:
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in d["stages_s"].items() if k != "total")
        lines += [
            f"Default build (`bedside-lite build`, whole process): {d['wall_s']} s wall; "
            f"stages: {stages}.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--legacy-python", help="a numpy<2 Python with tflite-runtime 2.14")
    parser.add_argument("--workdir", type=Path, help="keep models and builds here")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bedside-bench-"))
    result: dict[str, Any] = {"workloads": [], "skipped": []}
    for name in args.workloads:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr)
        workload = prepare(name, workdir / "models")
        if workload is None:
            print(
                f"skipped {name}: BreastMNIST not found (set BEDSIDE_BREASTMNIST)", file=sys.stderr
            )
            result["skipped"].append(name)
            continue
        result["workloads"].append(run_workload(workload, workdir / name, args))
    result["default_build"] = time_default_build(workdir)
    result["machine"] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    table = markdown(result)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
