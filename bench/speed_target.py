"""`--structured-sparsity auto --speedup-target 2` on three classifiers the recipe never saw.

Issue 34's goal: each model >= 2x faster than its hand-made int8 PTQ at <= 0.01 test AUROC
below it, with the pipeline's default recipe, measured in one interleaved device_bench run
per model. The models and their training were fixed before the speed search's default
recipe was run on any of them (this script's first commit; the recipe is the pipeline's,
`pipeline/config/prune.py`):

- `mnv2-2site`: 28x28x1 pixels -> Rescaling(1/127.5, -1) -> Resizing(96, 96) -> MobileNetV2
  alpha 0.35 (`keras.applications`, `weights=None`, nested as ONE layer) -> pooling ->
  Dense(1, sigmoid), on **BreastMNIST-2site**, a task made here from the data we have (the
  issue's PneumoniaMNIST is not on this machine and there is no internet): 40% of the cases
  of every split (seeded) pass through a simulated second scanner (contrast x0.6 around the
  image mean, Gaussian noise sigma 12 grey levels, clipped), as issue 29's second site;
- `resnet-2site`: the same front, Resizing(64, 64), and a ResNet-18-style backbone (four
  stages of two basic blocks, widths 16-32-64-128, BatchNorm, nested as one layer), on
  BreastMNIST-2site;
- `mnv2-breast`: the MobileNetV2 model on BreastMNIST itself.

Each is trained from scratch with seed 11 (never used by the earlier benchmarks): 60 epochs,
randomly mirrored and shifted images, Adam 1e-3 decayed along a cosine (bench/structured.py's
`train`). Then, per model:

1. `bedside-lite build --model M.keras --data D.npz --positive-class 0
   --structured-sparsity auto --speedup-target 2 --decide interval --no-bench --out DIR`
   (`--decide` is the pipeline's default unless `--decide point` is given here; every
   other option the pipeline's default), timed as a whole process;
2. the hand-made int8 PTQ of the unpruned model (bench/nested.py's `handmade_int8`: the
   TFLiteConverter as documented, the first 100 training images, int8 I/O) and the
   unpruned float32 file;
3. ONE interleaved device_bench run (1 thread, the bench's runtime) of the hand-made int8,
   the unpruned float32 and the build's int8 file; test AUROC of each file on the test split
   (malignant = class 0 positive), with a paired-bootstrap 95% interval of the build's int8
   minus the hand-made int8.

    PYTHONPATH=. python bench/speed_target.py [--models mnv2-2site,resnet-2site,mnv2-breast]
        [--cache DIR] [--seed N] [--decide point] [--train-only] [--json out.json]

`--seed N` trains (and caches) the three models with another seed: models no run has seen.

A benchmark, not a test. Trained models and the made data are cached in `--cache`
(default /tmp/bedside-speed-target-bench), so a rerun only builds and times.
"""

from __future__ import annotations

import argparse
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

from bench.prune_sweep import DEFAULT_DATA, MALIGNANT  # noqa: E402

TRAIN_SEED = 11
EPOCHS = 60
SECOND_SITE = {"fraction": 0.4, "contrast": 0.6, "noise": 12.0, "seed": 5}
MODELS = ("mnv2-2site", "resnet-2site", "mnv2-breast")


def two_site(source: Path, target: Path) -> None:
    """BreastMNIST-2site: a fraction of every split through a simulated second scanner;
    `<split>_site` holds "A" or "B" for every case."""
    rng = np.random.default_rng(SECOND_SITE["seed"])
    arrays: dict[str, np.ndarray] = {}
    with np.load(source) as data:
        for split in ("train", "val", "test"):
            images = data[f"{split}_images"].astype(np.float32)
            second = rng.random(len(images)) < SECOND_SITE["fraction"]
            mean = images[second].mean(axis=(1, 2), keepdims=True)
            shifted = mean + SECOND_SITE["contrast"] * (images[second] - mean)
            shifted += rng.normal(0.0, SECOND_SITE["noise"], shifted.shape)
            images[second] = np.clip(np.rint(shifted), 0, 255)
            arrays[f"{split}_images"] = images.astype(np.uint8)
            arrays[f"{split}_labels"] = data[f"{split}_labels"]
            arrays[f"{split}_site"] = np.where(second, "B", "A")
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, **arrays)


def resnet_backbone(size: int = 64, width: int = 16) -> Any:
    """A ResNet-18-style backbone: stem conv, four stages of two basic blocks."""
    import keras

    layers = keras.layers
    inputs = keras.Input((size, size, 1))
    h = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(inputs)
    h = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(h))
    for stage in range(4):
        channels = width * 2**stage
        for block in range(2):
            stride = 2 if block == 0 and stage > 0 else 1
            skip = h
            r = layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False)(h)
            r = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(r))
            r = layers.Conv2D(channels, 3, padding="same", use_bias=False)(r)
            r = layers.BatchNormalization(momentum=0.9)(r)
            if stride != 1 or skip.shape[-1] != channels:
                skip = layers.Conv2D(channels, 1, strides=stride, use_bias=False)(skip)
                skip = layers.BatchNormalization(momentum=0.9)(skip)
            h = layers.ReLU()(layers.Add()([skip, r]))
    return keras.Model(inputs, h, name="resnet18_style")


def nested_resnet(size: int = 64) -> Any:
    import keras

    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    x = keras.layers.Resizing(size, size, name="resize")(x)
    x = resnet_backbone(size)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="malignant_head")(x)
    return keras.Model(inputs, outputs, name="nested_resnet")


def data_path(name: str, args: argparse.Namespace) -> Path:
    if name.endswith("-breast"):
        return args.data
    path = args.cache / "breastmnist_2site.npz"
    if not path.is_file():
        two_site(args.data, path)
    return path


def trained(name: str, args: argparse.Namespace) -> tuple[Path, float]:
    """The trained model's .keras file (from the cache when there) and its training seconds."""
    from bench.nested import nested_mobilenet_v2
    from bench.structured import load_splits, train

    path = args.cache / f"{name}_e{EPOCHS}_s{args.seed}.keras"
    if path.is_file():
        return path, 0.0
    make = nested_resnet if name.startswith("resnet") else nested_mobilenet_v2
    splits = load_splits(data_path(name, args), None)
    started = time.perf_counter()
    model, _ = train(make, splits, EPOCHS, args.seed, ("hflip", "shift"))
    args.cache.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path, time.perf_counter() - started


def pipeline_build(model: Path, data: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The build a user runs, as a whole process; its report and wall seconds."""
    cmd = [
        sys.executable, "-c", "from pipeline.cli import run; run()", "build",
        "--model", str(model), "--data", str(data), "--positive-class", str(MALIGNANT),
        "--structured-sparsity", "auto",
        "--speedup-target", str(args.target), "--decide", args.decide,
        "--no-bench", "--overwrite", "--out", str(out),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    (out.parent / f"{out.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode not in (0, 1):  # 1: a gate failed; the files are still there
        raise RuntimeError(f"build exited {done.returncode}:\n{done.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    return {"command": " ".join(cmd[2:]), "exit": done.returncode, "seconds": seconds,
            "report": report, "console": done.stdout.splitlines()[-40:]}  # fmt: skip


def file_auroc(path: Path, splits: Any, postprocess: str = "none") -> tuple[float, np.ndarray]:
    """Test AUROC of a .tflite file; `postprocess` as the build's report names it
    (`quantization.output.postprocess`: "sigmoid" when the file outputs logits, e.g. the
    int8 ladder's `logits+...` recipes, and the host applies the sigmoid)."""
    from device_bench.runner import run_model
    from pipeline.evaluate.metrics import evaluate, probabilities
    from pipeline.models import OutputKind

    kind = OutputKind.LOGITS if postprocess == "sigmoid" else OutputKind.SIGMOID
    probs = probabilities(run_model(path, splits.model_inputs("test")).outputs, kind)
    return evaluate(probs, splits.y_test, positive_class=MALIGNANT)["auroc"], probs[:, MALIGNANT]


def paired_interval(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, samples: int = 2000
) -> list[float]:
    """95% paired-bootstrap interval of AUROC(b) - AUROC(a) over test cases."""
    truth = np.asarray(y) == MALIGNANT
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(samples):
        idx = rng.integers(0, len(truth), len(truth))
        if truth[idx].all() or not truth[idx].any():
            continue
        diffs.append(roc_auroc(truth[idx], b[idx]) - roc_auroc(truth[idx], a[idx]))
    return [float(v) for v in np.percentile(diffs, [2.5, 97.5])]


def roc_auroc(truth: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, scores))


def one_model(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import keras

    from bench.nested import handmade_int8
    from bench.structured import load_splits
    from converters.tflite import to_float32
    from pipeline.config import BenchConfig
    from pipeline.device.client import bench as run_device_bench
    from pipeline.device.local import summarize

    model_path, train_s = trained(name, args)
    data = data_path(name, args)
    splits = load_splits(data, None)
    model = keras.models.load_model(model_path, compile=False)
    handmade = tmp / f"{name}_handmade_int8.tflite"
    hand_metrics, hand_scores = handmade_int8(model, splits, handmade)
    float32 = tmp / f"{name}_unpruned_float32.tflite"
    float32.write_bytes(to_float32(model))
    f32_auroc, _ = file_auroc(float32, splits)
    seed = "" if args.seed == TRAIN_SEED else f"_s{args.seed}"
    out = args.cache / f"build_{name}_{args.decide}{seed}"
    built = pipeline_build(model_path, data, out, args)
    int8 = out / "model_int8.tflite"
    postprocess = built["report"]["quantization"]["output"].get("postprocess", "none")
    int8_auroc, int8_scores = file_auroc(int8, splits, postprocess)
    files = [handmade, float32, int8]
    config = BenchConfig(runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds,
                         threads=1)  # fmt: skip
    timing = run_device_bench(files, config)
    p50 = [summarize(m).get("latency_ms", {}).get("p50") for m in timing["models"]]
    structured = built["report"].get("pruning", {}).get("structured") or {}
    return {
        "model": name,
        "seed": args.seed,
        "data": str(data),
        "train_seconds": train_s,
        "build": {k: v for k, v in built.items() if k != "report"},
        "structured": structured,
        "test_auroc": {
            "handmade_int8": hand_metrics["test_auroc_int8"],
            "unpruned_float32": f32_auroc,
            "pipeline_int8": int8_auroc,
            # the build's own evaluation of its int8 file (must agree with the line above)
            "pipeline_int8_in_report": built["report"]["metrics"]["int8"]["auroc"],
        },  # fmt: skip
        "int8_recipe": built["report"]["quantization"]["recipe"],
        "delta_auroc_vs_handmade": int8_auroc - hand_metrics["test_auroc_int8"],
        "delta_ci95": paired_interval(splits.y_test, hand_scores, int8_scores),
        "p50_ms": {"handmade_int8": p50[0], "unpruned_float32": p50[1], "pipeline_int8": p50[2]},
        "speedup_vs_handmade_int8": p50[0] / p50[2] if p50[0] and p50[2] else None,
        "speedup_vs_unpruned_float32": p50[1] / p50[2] if p50[1] and p50[2] else None,
        "runtime": f"{summarize(timing['models'][0]).get('runtime')}",
    }


def markdown(rows: list[dict[str, Any]], target: float) -> str:
    lines = [
        f"| model | build s | chosen cut | test AUROC hand-made int8 | pipeline int8 | "
        f"Δ [95% CI] | p50 ms hand-made int8 | f32 | pipeline int8 | speedup vs hand-made "
        f"int8 | vs f32 | goal ({target:g}x, Δ >= -0.01) |",
        "|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        st = r["structured"]
        chosen = (st.get("auto") or {}).get("chosen_sparsity")
        front = st.get("resize")
        cut = "none" if chosen is None else (
            (f"S{front['after'][0]} " if front else "")
            + f"D{len(st.get('dropped_blocks') or ())} R {chosen:g} M{st.get('channel_multiple')}"
        )  # fmt: skip
        cut += f"; int8 {r.get('int8_recipe', '?')}"
        a, p, s = r["test_auroc"], r["p50_ms"], r["speedup_vs_handmade_int8"] or 0.0
        met = s >= target and r["delta_auroc_vs_handmade"] >= -0.01
        lo, hi = r["delta_ci95"]
        lines.append(
            f"| {r['model']} | {r['build']['seconds']:.0f} | {cut} | "
            f"{a['handmade_int8']:.4f} | {a['pipeline_int8']:.4f} | "
            f"{r['delta_auroc_vs_handmade']:+.4f} [{lo:+.3f}, {hi:+.3f}] | "
            f"{p['handmade_int8']:.4f} | {p['unpruned_float32']:.4f} | {p['pipeline_int8']:.4f} | "
            f"{s:.2f}x | {r['speedup_vs_unpruned_float32'] or 0:.2f}x | "
            f"{'met' if met else 'missed'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bedside-speed-target-bench"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--target", type=float, default=2.0)
    parser.add_argument(
        "--decide", choices=("interval", "point"), default="interval",
        help="the build's --decide (interval: the pipeline's default)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=TRAIN_SEED,
        help="training seed of the models (another seed: models no run has seen)",
    )  # fmt: skip
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--table", type=Path, help="print the table of a run's JSON and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.table.read_text()), args.target))
        return 0
    if not args.data.is_file():
        print(f"skipped: BreastMNIST not found at {args.data} (pass --data PATH)")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; expected some of {', '.join(MODELS)}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="speed-target-") as tmp:
        for name in names:
            if args.train_only:
                path, seconds = trained(name, args)
                print(f"{name}: {path} ({seconds:.0f} s)", file=sys.stderr)
                continue
            rows.append(one_model(name, args, Path(tmp)))
            print(markdown(rows[-1:], args.target), file=sys.stderr)
    if rows:
        print(markdown(rows, args.target))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
