"""Structured pruning + int8 of a nested-backbone MobileNetV2-0.35 vs a hand-made int8 PTQ.

The transfer-learning shape most medical classifiers have (issue 20): 28x28x1 BreastMNIST
pixels -> Rescaling(1/127.5, -1) -> Resizing(96, 96) -> MobileNetV2 alpha 0.35
(`keras.applications`, `include_top=False`, `weights=None`, 96x96x1, nested as ONE layer)
-> GlobalAveragePooling2D -> Dense(1, sigmoid). Trained from scratch on the train split
(`--epochs`, randomly mirrored and shifted images, cosine rate: bench/structured.py's
recipe), then fine-tuned once more with the structured recipe distilling from itself
(`--base-finetune-epochs`): that is the unpruned model.

Reference: the unpruned model quantized the plain way a user would without the pipeline
(bench/run.py's `handmade_int8`: `TFLiteConverter`, `Optimize.DEFAULT`, the first 100
training images as representative data, int8 I/O). Each variant D:R[:criterion] is made by
the pipeline's own structured step on the NESTED model
(`pipeline.prune.structured.prune_structured`, which flattens the backbone into the outer
graph first): drop the D weakest residual branches, remove the fraction R of channels
(global scope, `--channel-multiple`), fine-tune
`--finetune-epochs` with `--augment`, `--lr-schedule`, `--distill` from the unpruned model,
then quantize as the build does. Every file is scored on the test split (AUROC, malignant =
class 0 positive; Δ to the hand-made int8 with a paired-bootstrap interval over test
images), and all files are timed in ONE interleaved device_bench run at 1 thread.

Then, per trained model, the variant a user would pick without looking at test: the fewest
MACs among those whose float validation AUROC is within `--max-drop` of the unpruned
model's (else the best validation AUROC); its test Δ and speedup are reported per model and
as a mean over models with a paired-bootstrap interval (`select_on_validation`).

    PYTHONPATH=. python bench/nested.py [--train-seeds 0] [--cache DIR] [--json out.json]

A benchmark, not a test: on two shared cores about 50 min to train one model, then 17 min
for the three default variants. Trained models are cached in `--cache` (default
/tmp/bedside-nested-bench) so a rerun only prunes; `--train-only` stops after training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.prune_sweep import DEFAULT_DATA, MALIGNANT  # noqa: E402
from bench.structured import (  # noqa: E402
    auroc_delta_ci,
    finetune_recipe,
    finetuned_copy,
    fmt,
    fmt_pair,
    load_splits,
    parse_variants,
    split_names,
    to_int8_file,
    train,
    val_auroc,
)

BASE_FINETUNE_SEED = 1000  # + training seed, as in bench/structured.py


def nested_mobilenet_v2(alpha: float = 0.35, size: int = 96, momentum: float = 0.9) -> Any:
    """The issue's transfer-learning classifier: Rescaling and Resizing inside the model,
    the MobileNetV2 backbone nested as one layer, a sigmoid head."""
    import keras

    base = keras.applications.MobileNetV2(
        input_shape=(size, size, 1), alpha=alpha, include_top=False, weights=None
    )
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    x = keras.layers.Resizing(size, size, name="resize")(x)
    x = base(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="malignant_head")(x)
    return keras.Model(inputs, outputs, name="nested_mobilenet_v2")


def trained_model(args: argparse.Namespace, splits: Any, seed: int) -> tuple[Any, float]:
    """The unpruned model of training seed `seed` (trained, then fine-tuned with the recipe),
    from `--cache` when it is there; and the seconds it took (0 when cached)."""
    import keras

    from pipeline.models import output_kind

    path = args.cache / f"nested_e{args.epochs}_b{args.base_finetune_epochs}_s{seed}.keras"
    if path.is_file():
        return keras.models.load_model(path, compile=False), 0.0
    start = time.perf_counter()
    model, _ = train(nested_mobilenet_v2, splits, args.epochs, seed, args.train_augment)
    if args.base_finetune_epochs > 0:
        recipe = finetune_recipe(args, args.base_finetune_epochs)
        kind = output_kind(model)
        model = finetuned_copy(model, splits, kind, recipe, BASE_FINETUNE_SEED + seed, model)
    args.cache.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model, time.perf_counter() - start


def handmade_int8(model: Any, splits: Any, path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Plain TFLite full-integer PTQ of `model` as documented (calibrated on the first 100
    training images, int8 I/O): what a user gets without the pipeline."""
    import tensorflow as tf

    from device_bench.runner import run_model
    from pipeline.evaluate.metrics import evaluate, probabilities
    from pipeline.models import output_kind

    x_train = splits.model_inputs("train")

    def representative() -> Any:
        for i in range(100):
            yield [x_train[i : i + 1]]

    def convert(converter: Any) -> bytes:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        return converter.convert()

    # from_keras_model, as documented. Not `model.export(format="tf_saved_model")` +
    # from_saved_model: on this nested model (Keras 3.15) that export traces every
    # BatchNormalization in training mode, and the file is 998 kB and ~100x slower.
    try:
        data = convert(tf.lite.TFLiteConverter.from_keras_model(model))
    except Exception:  # noqa: BLE001 - the SavedModel route, as bench/run.py falls back
        with tempfile.TemporaryDirectory(prefix="handmade-") as tmp:
            model.export(tmp, format="tf_saved_model", verbose=False)
            data = convert(tf.lite.TFLiteConverter.from_saved_model(tmp))
    path.write_bytes(data)
    probs = probabilities(run_model(path, splits.model_inputs("test")).outputs, output_kind(model))
    auroc = evaluate(probs, splits.y_test, positive_class=MALIGNANT)["auroc"]
    return {"test_auroc_int8": auroc, "int8_bytes": path.stat().st_size}, probs[:, MALIGNANT]


def variant(model: Any, splits: Any, args: argparse.Namespace, spec: Any, seed: int) -> Any:
    """The pipeline's structured step on the nested model, fine-tuning included; returns the
    outcome and its build seconds."""
    from pipeline.config import StructuredConfig
    from pipeline.models import output_kind
    from pipeline.prune import structured

    blocks, sparsity, criterion = spec
    kind = output_kind(model)
    config = StructuredConfig(
        sparsity=sparsity or None,
        drop_blocks=blocks,
        criterion=criterion or args.criterion,
        channel_multiple=args.channel_multiple,
        finetune_epochs=args.finetune_epochs,
        augment=args.augment,
        lr_schedule=args.lr_schedule,
        distill=args.distill,
    )
    start = time.perf_counter()
    outcome = structured.prune_structured(
        model, splits, kind, config, score=val_auroc(splits, kind), seed=seed
    )
    return outcome, time.perf_counter() - start


def host_resized(model: Any, splits: Any, layer: str = "resize") -> tuple[Any, Any]:
    """The model from the output of its `layer` (Rescaling and Resizing done on the host)
    and the splits as the host would feed it (through the model's own layers up to there).
    """
    import dataclasses

    import keras

    from pipeline.data.preprocessing import Preprocessing

    cut = model.get_layer(layer).output
    device = keras.Model(cut, model.output, name=f"{model.name}_host_resize")
    front = keras.Model(model.input, cut)

    def host(x: np.ndarray) -> np.ndarray:
        return np.asarray(front.predict(x, verbose=0, batch_size=256))

    fed = dataclasses.replace(
        splits, x_train=host(splits.model_inputs("train")), x_val=host(splits.model_inputs("val")),
        x_test=host(splits.model_inputs("test")), preprocessing=Preprocessing.identity(),
    )  # fmt: skip
    return device, fed


def _label(spec: Any, args: argparse.Namespace) -> str:
    blocks, sparsity, criterion = spec
    parts = [f"--drop-blocks {blocks}"] if blocks else []
    if sparsity:
        parts.append(
            f"--structured-sparsity {sparsity:g} --structured-criterion "
            f"{criterion or args.criterion} --channel-multiple {args.channel_multiple}"
        )
    return " ".join(parts) or "none"


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from pipeline.config import BenchConfig
    from pipeline.device.client import bench as run_device_bench
    from pipeline.device.local import summarize
    from pipeline.models import output_kind
    from pipeline.prune.macs import total_macs
    from pipeline.prune.structured.auto import shipped_auroc

    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    splits = load_splits(args.data, None)  # 28x28x1 raw pixels: the model scales and resizes
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nested-bench-") as tmp:
        for seed in args.train_seeds:
            model, seconds = trained_model(args, splits, seed)
            print(f"seed {seed}: unpruned model ready ({seconds:.0f} s)", file=sys.stderr)
            if args.train_only:
                continue
            kind = output_kind(model)
            path = Path(tmp) / f"{len(runs):03d}.tflite"
            metrics, scores = handmade_int8(model, splits, path)
            runs.append({
                "variant": "unpruned, hand-made int8 PTQ", "train_seed": seed, "baseline": True,
                "params": int(model.count_params()), "macs": total_macs(model),
                "val_auroc": val_auroc(splits, kind)(model), "build_seconds": None,
                **metrics, "scores": scores, "file": str(path),
            })  # fmt: skip
            print(f"  hand-made int8: {fmt(metrics['test_auroc_int8'])}", file=sys.stderr)
            for spec in args.variants:
                outcome, build_seconds = variant(model, splits, args, spec, seed)
                path = Path(tmp) / f"{len(runs):03d}.tflite"
                metrics, scores = to_int8_file(outcome.model, splits, kind, path, seed)
                runs.append({
                    "variant": _label(spec, args), "train_seed": seed,
                    "params": int(outcome.model.count_params()),
                    "macs": outcome.macs_after, "removed_channels": outcome.removed_channels,
                    "dropped_blocks": len(outcome.dropped_blocks),
                    "rebuild_max_abs_diff": outcome.rebuild_max_abs_diff,
                    "skipped_layers": len(outcome.skipped),
                    "val_auroc": shipped_auroc(outcome),
                    "build_seconds": build_seconds, **metrics,
                    "scores": scores, "file": str(path),
                })  # fmt: skip
                print(f"  {_label(spec, args)}: {fmt(metrics['test_auroc_int8'])} "
                      f"({build_seconds:.0f} s)", file=sys.stderr)  # fmt: skip
                if args.host_resize:  # the same model, its resize moved to the host
                    device, fed = host_resized(outcome.model, splits)
                    path = Path(tmp) / f"{len(runs):03d}.tflite"
                    metrics, scores = to_int8_file(device, fed, kind, path, seed)
                    runs.append({
                        **runs[-1], "variant": f"{_label(spec, args)}, resize on the host",
                        "host_resize": True, "host_resize_of": _label(spec, args),
                        "params": int(device.count_params()), "macs": total_macs(device),
                        "val_auroc": val_auroc(fed, kind)(device), **metrics,
                        "scores": scores, "file": str(path),
                    })  # fmt: skip
        if args.train_only:
            return {"seconds": round(time.perf_counter() - started, 1), "rows": []}
        config = BenchConfig(runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds,
                             threads=1)  # fmt: skip
        report = run_device_bench([Path(r["file"]) for r in runs], config)
    for entry, model_entry in zip(runs, report["models"], strict=True):
        summary = summarize(model_entry)
        entry["p50_ms"] = summary.get("latency_ms", {}).get("p50")
        entry["runtime"] = f"{summary.get('runtime')} {summary.get('runtime_version')}"
    return {
        "data": str(args.data),
        "train_seeds": list(args.train_seeds),
        "epochs": args.epochs,
        "base_finetune_epochs": args.base_finetune_epochs,
        "finetune_epochs": args.finetune_epochs,
        "finetune_recipe": {
            "augment": list(args.augment),
            "lr_schedule": args.lr_schedule,
            "distill": args.distill,
        },  # fmt: skip
        "rows": aggregate(runs, splits.y_test),
        "selected": select_on_validation(runs, splits.y_test, args.max_drop),
        "max_drop": args.max_drop,
        "runs": [
            {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in r.items() if k != "file"}
            for r in runs
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }


def aggregate(runs: list[dict[str, Any]], y_test: np.ndarray) -> list[dict[str, Any]]:
    """One row per variant: means over training seeds; speedup and Δ AUROC taken within
    each trained model against its hand-made int8, then averaged."""
    seeds = list(dict.fromkeys(r["train_seed"] for r in runs))
    base = {r["train_seed"]: r for r in runs if r.get("baseline")}
    rows = []
    for name in dict.fromkeys(r["variant"] for r in runs):
        these = [r for r in runs if r["variant"] == name]
        speedups = [
            base[r["train_seed"]]["p50_ms"] / r["p50_ms"]
            for r in these
            if r["p50_ms"] and base[r["train_seed"]]["p50_ms"]
        ]
        deltas = [r["test_auroc_int8"] - base[r["train_seed"]]["test_auroc_int8"] for r in these]
        groups = [([base[r["train_seed"]]["scores"]], [r["scores"]]) for r in these]
        first = these[0]
        rows.append({
            "variant": name, "trained_models": len(seeds), "params": first["params"],
            "macs": first["macs"], "int8_bytes": first["int8_bytes"],
            "removed_channels": first.get("removed_channels", 0),
            "p50_ms": float(np.mean([r["p50_ms"] for r in these if r["p50_ms"]] or [np.nan])),
            "speedup": float(np.mean(speedups)) if speedups else None,
            "speedup_range": [min(speedups), max(speedups)] if speedups else None,
            "test_auroc_int8": float(np.mean([r["test_auroc_int8"] for r in these])),
            "delta": float(np.mean(deltas)),
            "delta_ci95": None if first.get("baseline") else auroc_delta_ci(y_test, groups),
            "val_auroc": float(np.mean([r["val_auroc"] for r in these])),
            "build_seconds": None if first.get("baseline")
            else float(np.mean([r["build_seconds"] for r in these])),
        })  # fmt: skip
    return rows


def _chosen(these: list[dict[str, Any]], base: dict[str, Any], max_drop: float) -> Any:
    """The variant a user picks without looking at test: the fewest MACs among those whose
    float validation AUROC stays within `max_drop` of the unpruned model's (as
    `--sparsity auto` judges); when none does, the best validation AUROC."""
    within = [r for r in these if r["val_auroc"] >= base["val_auroc"] - max_drop - 1e-12]
    if within:
        return min(within, key=lambda r: r["macs"]), True
    return max(these, key=lambda r: r["val_auroc"]), False


def select_on_validation(
    runs: list[dict[str, Any]], y_test: np.ndarray, max_drop: float, samples: int = 2000
) -> dict[str, Any]:
    """Per trained model, the variant chosen on validation (`_chosen`; the rule is fixed
    before any test number is seen), then its test AUROC and speed against the hand-made
    int8 of the same model; and the mean over trained models with a paired-bootstrap
    interval. The chosen model's host-resize twin (same weights) is reported beside it."""
    picks, groups = [], []
    for seed in dict.fromkeys(r["train_seed"] for r in runs):
        mine = [r for r in runs if r["train_seed"] == seed]
        base = next(r for r in mine if r.get("baseline"))
        device = [r for r in mine if not r.get("baseline") and not r.get("host_resize")]
        if not device:
            continue
        chosen, within = _chosen(device, base, max_drop)
        twin = next((r for r in mine if r.get("host_resize_of") == chosen["variant"]), None)
        groups.append(([base["scores"]], [chosen["scores"]]))
        picks.append({
            "train_seed": seed, "variant": chosen["variant"], "within_budget": within,
            "val_auroc": chosen["val_auroc"], "base_val_auroc": base["val_auroc"],
            "test_auroc_int8": chosen["test_auroc_int8"],
            "base_test_auroc_int8": base["test_auroc_int8"],
            "delta": chosen["test_auroc_int8"] - base["test_auroc_int8"],
            "speedup": _ratio(base.get("p50_ms"), chosen.get("p50_ms")),
            "speedup_host_resize": _ratio(base.get("p50_ms"), twin and twin.get("p50_ms")),
            "delta_host_resize": twin and twin["test_auroc_int8"] - base["test_auroc_int8"],
            "build_seconds": chosen["build_seconds"],
        })  # fmt: skip
    if not picks:
        return {"picks": [], "mean": None}
    mean = {
        key: float(np.mean([p[key] for p in picks if p[key] is not None] or [np.nan]))
        for key in ("delta", "speedup", "speedup_host_resize", "delta_host_resize")
    }
    mean["delta_ci95"] = auroc_delta_ci(y_test, groups, samples=samples)
    return {"picks": picks, "mean": mean}


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _selected_markdown(result: dict[str, Any]) -> list[str]:
    selected = result.get("selected") or {}
    if not selected.get("picks"):
        return []
    lines = [
        "",
        f"Chosen on validation per trained model (fewest MACs with float validation AUROC "
        f"within {result['max_drop']:g} of the unpruned model's; else the best validation "
        "AUROC), then scored on test:",
        "",
        "| trained model | chosen | val AUROC (unpruned) | test AUROC int8 (hand-made) | Δ | "
        "speedup | speedup, resize on host (Δ) | build s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for p in selected["picks"]:
        note = "" if p["within_budget"] else " (none within budget)"
        lines.append(
            f"| {p['train_seed']} | {p['variant']}{note} | {fmt(p['val_auroc'])} "
            f"({fmt(p['base_val_auroc'])}) | {fmt(p['test_auroc_int8'])} "
            f"({fmt(p['base_test_auroc_int8'])}) | {fmt(p['delta'], '+.4f')} | "
            f"{fmt(p['speedup'], '.2f')}x | {fmt(p['speedup_host_resize'], '.2f')}x "
            f"({fmt(p['delta_host_resize'], '+.4f')}) | {fmt(p['build_seconds'], '.0f')} |"
        )
    m = selected["mean"]
    lines.append(
        f"| mean | | | | {fmt(m['delta'], '+.4f')} {fmt_pair(m['delta_ci95'], '+.3f')} | "
        f"{fmt(m['speedup'], '.2f')}x | {fmt(m['speedup_host_resize'], '.2f')}x "
        f"({fmt(m['delta_host_resize'], '+.4f')}) | |"
    )
    return lines


def markdown(result: dict[str, Any]) -> str:
    if not result["rows"]:
        return f"trained only ({result['seconds']} s)"
    runtime = next((r["runtime"] for r in result["runs"] if r.get("runtime")), "-")
    recipe = result["finetune_recipe"]
    lines = [
        f"Nested MobileNetV2-0.35 (Rescaling + Resizing(96, 96) inside), BreastMNIST test (156 "
        f"images), {runtime}, 1 thread, XNNPACK, one interleaved device_bench run; "
        f"{len(result['train_seeds'])} trained model(s) (seeds "
        f"{', '.join(map(str, result['train_seeds']))}; {result['epochs']} epochs + "
        f"{result['base_finetune_epochs']} of the recipe). Variants fine-tuned "
        f"{result['finetune_epochs']} epochs (augment {','.join(recipe['augment']) or 'none'}, "
        f"{recipe['lr_schedule']} rate, distill {recipe['distill']:g}). Δ and speedup: against "
        "the hand-made int8 of the same trained model, mean [range].",
        "",
        "| variant | channels removed | params | MACs | int8 bytes | p50 ms | speedup vs "
        "hand-made int8 | test AUROC int8 | Δ vs hand-made int8 (95% CI) | val AUROC "
        "| build s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        speed = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(
            f"| {r['variant']} | {r['removed_channels']} | {r['params']:,} | "
            f"{fmt(r['macs'], ',')} | {r['int8_bytes']:,} | {fmt(r['p50_ms'])} | "
            f"{speed} {fmt_pair(r['speedup_range'], '.2f')} | {fmt(r['test_auroc_int8'])} | "
            f"{fmt(r['delta'], '+.4f')} {fmt_pair(r['delta_ci95'], '+.3f')} | "
            f"{fmt(r['val_auroc'])} | {fmt(r['build_seconds'], '.0f')} |"
        )
    lines += _selected_markdown(result)
    lines += ["", f"({result['seconds']} s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli.arguments import add_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bedside-nested-bench"))
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--train-augment", type=split_names, default=("hflip", "shift"))
    parser.add_argument("--base-finetune-epochs", type=int, default=40)
    parser.add_argument("--finetune-epochs", type=int, default=40)
    parser.add_argument("--augment", type=split_names, default=("hflip", "shift"))
    # the build's options, under this script's names and defaults
    add_option(parser, "structured_lr_schedule", "--lr-schedule", default="cosine")
    add_option(parser, "structured_distill", "--distill", default=0.5)
    parser.add_argument(
        "--variants",
        type=parse_variants,
        default=parse_variants("10:0.6:activation,10:0.65:activation,10:0.7:activation"),
        help="comma-separated D:R[:criterion] (residual branches dropped, channel sparsity)",
    )
    add_option(parser, "channel_multiple", "--channel-multiple", default=8)
    add_option(parser, "structured_criterion", "--criterion", default="activation")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument(
        "--train-seeds", type=lambda text: [int(s) for s in split_names(text)], default=[0]
    )
    parser.add_argument(
        "--host-resize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time each variant with its Rescaling and Resizing moved to the host (the "
        "device model starts at 96x96x1)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.01,
        help="validation AUROC a variant may lose and still be chosen (per trained model)",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"skipped: BreastMNIST not found at {args.data}; pass --data PATH.", file=sys.stderr)
        return 0
    result = run(args)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
