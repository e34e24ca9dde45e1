"""Int8 latency of structured-pruned vs unpruned models on BreastMNIST, and its AUROC cost.

Two models are trained from scratch (fixed seed) on the BreastMNIST train split:

- the reference CNN of bench/prune_sweep.py (28x28x1; three convolutions, two dense;
  60 epochs of Adam 1e-3);
- MobileNetV2 alpha 0.35 at 96x96x3 (keras.applications, weights=None, one sigmoid unit,
  BatchNormalization momentum 0.9), fed as the build feeds it: resized to 96x96 on the
  host, gray repeated to RGB, scaled to [-1, 1]; 60 epochs on randomly mirrored and shifted
  images with a cosine-decayed rate (without them it overfits the 546 images: test AUROC
  0.77 instead of 0.86).

Each variant D:R[:criterion] is made by the pipeline's own step (`pipeline.structured`):
drop the D residual branches that add least, then remove the fraction R of channels
(global scope, `--channel-multiple`, criterion l1 or activation); the rebuilt model is
fine-tuned by the pipeline's helper once per seed (`--seeds`, default 3) with the recipe of
`--structured-augment hflip --structured-augment shift --structured-lr-schedule cosine
--structured-distill 0.5` (40 epochs). The unpruned model is fine-tuned the same way as a
control ("unpruned + fine-tuning"), so that an AUROC
difference is not just extra training. Every model is quantized to full-integer int8 as the
build does (`calibration_indices`, `to_int8`), run on the test split with device_bench's
runner, and scored with `pipeline.evaluation` (AUROC, malignant = class 0 positive); a
variant's AUROC is the mean over its seeds, with a paired-bootstrap interval of that mean's
difference to the unpruned int8 model. The first seed's int8 file of every variant is timed
in ONE interleaved device_bench run at 1 thread (`pipeline.benchmark.run_device_bench`), so
machine drift hits them alike. Prints a markdown table.

    PYTHONPATH=. python bench/structured.py [--data PATH] [--json results.json]

A benchmark, not a test: about 50 minutes on two cores.
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

from bench.prune_sweep import DEFAULT_DATA, MALIGNANT, reference_cnn  # noqa: E402


def mobilenet_v2(alpha: float = 0.35, size: int = 96, momentum: float = 0.9) -> Any:
    """MobileNetV2 on size x size x 3 inputs in [-1, 1] (the host resizes and scales)."""
    import keras

    model = keras.applications.MobileNetV2(
        alpha=alpha,
        input_shape=(size, size, 3),
        weights=None,
        classes=1,
        classifier_activation="sigmoid",
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
    return model


def load_splits(path: Path, size: int | None = None) -> Any:
    """BreastMNIST splits as the build prepares them: 28x28x1 raw pixels for the reference
    CNN (it rescales inside); for MobileNetV2 resized on the host to size x size, gray
    repeated to RGB and scaled to [-1, 1] (`--resize`, `--scale`, `--offset` of the build)."""
    from pipeline import data as data_mod

    if size is None:
        raw = data_mod.load(path, positive_class=MALIGNANT)
        return data_mod.fit_to_model(raw, (None, 28, 28, 1), str(path))
    raw = data_mod.load(
        path, positive_class=MALIGNANT, resize=(size, size), scale=1 / 127.5, offset=-1.0
    )
    return data_mod.fit_to_model(raw, (None, size, size, 3), str(path))


def train(
    build: Any, splits: Any, epochs: int, seed: int, augment: tuple[str, ...] = ()
) -> tuple[Any, float]:
    """Trains from scratch with Adam(1e-3); with `augment`, on randomly transformed images
    (the pipeline's augmenter) and a learning rate decayed to 0 along a cosine."""
    import keras

    from pipeline import pruning
    from pipeline.config import LrSchedule, PruneConfig
    from pipeline.models import output_kind

    keras.utils.set_random_seed(seed)
    model = build()
    start = time.perf_counter()
    if not augment:
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
        model.fit(
            splits.model_inputs("train"),
            splits.y_train.astype(np.float32),
            epochs=epochs,
            batch_size=32,
            shuffle=True,
            verbose=0,
        )
    else:  # the fine-tuning helper, run from scratch, is that loop
        config = PruneConfig(target_sparsity=0.0, finetune_epochs=epochs)
        empty = pruning.PruningResult(None, {}, None, {})
        pruning.finetune(model, splits, output_kind(model), [], empty, config, seed=seed,
                         augment=augment, lr_schedule=LrSchedule.COSINE)  # fmt: skip
    return model, time.perf_counter() - start


def val_auroc(splits: Any, kind: Any) -> Any:
    from pipeline.evaluation import evaluate, probabilities

    def score(model: Any) -> float | None:
        out = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
        return evaluate(probabilities(out, kind), splits.y_val, positive_class=MALIGNANT)["auroc"]

    return score


def to_int8_file(
    model: Any, splits: Any, kind: Any, path: Path, seed: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Quantizes as the build does and evaluates the file (and the Keras model) on the test
    split; also returns the int8 file's P(malignant) of every test image."""
    from converters.tflite import to_int8
    from device_bench.runner import run_model
    from pipeline.evaluation import evaluate, probabilities
    from pipeline.quantization import calibration_indices

    idx = calibration_indices(splits.y_train, 200, seed)
    path.write_bytes(to_int8(model, splits.model_inputs("train")[idx]))
    x_test = splits.model_inputs("test")
    probs = probabilities(run_model(path, x_test).outputs, kind)
    keras_probs = probabilities(model.predict(x_test, verbose=0, batch_size=256), kind)
    return {
        "test_auroc_int8": evaluate(probs, splits.y_test, positive_class=MALIGNANT)["auroc"],
        "test_auroc_float": evaluate(keras_probs, splits.y_test, positive_class=MALIGNANT)["auroc"],
        "int8_bytes": path.stat().st_size,
    }, probs[:, MALIGNANT]


def auroc_delta_ci(
    y: np.ndarray,
    base: np.ndarray,
    others: list[np.ndarray],
    samples: int = 2000,
    seed: int = 0,
) -> list[float]:
    """95% paired-bootstrap interval of mean over `others` of AUROC(other) - AUROC(base),
    resampling the test images (the same resample for every model)."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(y) == MALIGNANT
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(samples):
        idx = rng.integers(0, len(truth), len(truth))
        if truth[idx].all() or not truth[idx].any():
            continue
        reference = roc_auc_score(truth[idx], base[idx])
        deltas.append(np.mean([roc_auc_score(truth[idx], o[idx]) for o in others]) - reference)
    return [float(v) for v in np.percentile(deltas, [2.5, 97.5])]


def finetuned_copy(model: Any, splits: Any, kind: Any, recipe: Any, seed: int, teacher: Any) -> Any:
    """A copy of `model` fine-tuned by the pipeline's helper (the build's fine-tuning) with
    the recipe of a StructuredConfig, distilling from `teacher`."""
    import keras

    from pipeline import pruning
    from pipeline.config import PruneConfig

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    config = PruneConfig(target_sparsity=0.0, finetune_epochs=recipe.finetune_epochs)
    empty = pruning.PruningResult(None, {}, None, {})
    pruning.finetune(
        copy, splits, kind, [], empty, config, seed=seed, augment=recipe.augment,
        lr_schedule=recipe.lr_schedule, teacher=teacher, distill=recipe.distill,
    )  # fmt: skip
    return copy


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from pipeline import structured
    from pipeline.benchmark import run_device_bench, summarize
    from pipeline.config import BenchConfig, StructuredConfig
    from pipeline.macs import total_macs
    from pipeline.models import output_kind

    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    specs = [
        ("reference CNN", reference_cnn, None, args.cnn_epochs, args.cnn_augment,
         args.cnn_variants),
        ("MobileNetV2-0.35 96x96", mobilenet_v2, 96, args.mobilenet_epochs,
         args.mobilenet_augment, args.mobilenet_variants),
    ]  # fmt: skip
    recipe = StructuredConfig(
        finetune_epochs=args.finetune_epochs,
        augment=args.augment,
        lr_schedule=args.lr_schedule,
        distill=args.distill,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="structured-bench-") as tmp:
        files: list[Path] = []
        for name, build, size, epochs, augment, variants_of in specs:
            splits = load_splits(args.data, size)
            model, seconds = train(build, splits, epochs, args.seed, augment)
            kind = output_kind(model)
            score = val_auroc(splits, kind)
            print(f"{name}: trained {epochs} epochs in {seconds:.0f} s", file=sys.stderr)

            def tuned(
                start: Any, splits: Any = splits, kind: Any = kind, teacher: Any = model
            ) -> list[Any]:
                """One fine-tuned copy of `start` per seed, distilled from the unpruned."""
                return [
                    finetuned_copy(start, splits, kind, recipe, s, teacher)
                    for s in range(args.seed, args.seed + args.seeds)
                ]

            variants: list[tuple[str, list[Any], dict[str, Any]]] = [
                ("unpruned", [model], {"removed_channels": 0, "achieved_sparsity": 0.0})
            ]
            if args.finetune_epochs > 0:
                control = f"unpruned + fine-tuning ({args.finetune_epochs} ep)"
                unchanged = {"removed_channels": 0, "achieved_sparsity": 0.0}
                variants.append((control, tuned(model), unchanged))
            for blocks, sparsity, criterion in variants_of:
                config = StructuredConfig(
                    sparsity=sparsity or None,
                    drop_blocks=blocks,
                    criterion=criterion or args.criterion,
                    channel_multiple=args.channel_multiple,
                )
                outcome = structured.prune_structured(  # rebuilt, not yet fine-tuned
                    model, splits, kind, config, score=score, seed=args.seed
                )
                label = ", ".join(
                    ([f"{blocks} residual branches dropped"] if blocks else [])
                    + (
                        [f"R={sparsity:g} {config.criterion.value}, M={args.channel_multiple}"]
                        if sparsity
                        else []
                    )
                )
                variants.append(
                    (
                        f"structured {label}",
                        tuned(outcome.model) if args.finetune_epochs > 0 else [outcome.model],
                        {
                            "drop_blocks": blocks,
                            "criterion": config.criterion.value,
                            "removed_channels": outcome.removed_channels,
                            "achieved_sparsity": outcome.achieved_sparsity,
                            "rebuild_max_abs_diff": outcome.rebuild_max_abs_diff,
                            "val_auroc_before_finetune": outcome.val_auroc["pruned"],
                        },
                    )
                )
            if args.floor:
                branches = len(structured.residual_branches(model))
                config = StructuredConfig(
                    sparsity=0.99, drop_blocks=branches, channel_multiple=args.channel_multiple
                )
                outcome = structured.prune_structured(
                    model, splits, kind, config, score=score, seed=args.seed
                )
                label = f"{branches} residual branches dropped, " if branches else ""
                variants.append(
                    (
                        f"floor: {label}every layer at its minimum width (latency only)",
                        [outcome.model],
                        {"floor": True, "drop_blocks": branches,
                         "removed_channels": outcome.removed_channels,
                         "achieved_sparsity": outcome.achieved_sparsity},
                    )
                )  # fmt: skip
            base_scores = None
            for i, (variant, keras_models, extra) in enumerate(variants):
                path = Path(tmp) / f"{len(files):02d}.tflite"
                files.append(path)  # the first seed's file is timed: same shapes, same ops
                per_seed, all_scores = [], []
                for k, keras_model in enumerate(keras_models):
                    target = path if k == 0 else Path(tmp) / f"seed{k}.tflite"
                    metrics, scores = to_int8_file(keras_model, splits, kind, target, args.seed)
                    metrics["val_auroc"] = score(keras_model)
                    per_seed.append(metrics)
                    all_scores.append(scores)
                if base_scores is None:
                    base_scores = all_scores[0]
                if extra.get("floor"):  # not fine-tuned: its AUROC says nothing
                    per_seed = [{**per_seed[0], **dict.fromkeys(AUROC_KEYS)}]
                rows.append(
                    {
                        "model": name,
                        "variant": variant,
                        "baseline": i == 0,
                        "params": int(keras_models[0].count_params()),
                        "macs": total_macs(keras_models[0]),
                        **extra,
                        "seeds": len(keras_models),
                        "per_seed": per_seed,
                        **{key: _mean([m[key] for m in per_seed]) for key in AUROC_KEYS},
                        "test_auroc_int8_range": [
                            min(m["test_auroc_int8"] for m in per_seed),
                            max(m["test_auroc_int8"] for m in per_seed),
                        ]
                        if not extra.get("floor")
                        else None,
                        "int8_bytes": per_seed[0]["int8_bytes"],
                        "test_auroc_int8_delta_ci95": auroc_delta_ci(
                            splits.y_test, base_scores, all_scores, seed=args.seed
                        )
                        if not extra.get("floor")
                        else None,
                    }
                )
                print(f"  {variant}: test AUROC int8 {_fmt(rows[-1]['test_auroc_int8'])} "
                      f"{rows[-1]['test_auroc_int8_range']}", file=sys.stderr)  # fmt: skip
        bench_config = BenchConfig(
            runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds, threads=1
        )
        report = run_device_bench(files, bench_config)
    for row, entry in zip(rows, report["models"], strict=True):
        summary = summarize(entry)
        row["bench_status"] = summary["status"]
        row["p50_ms"] = summary.get("latency_ms", {}).get("p50")
        row["p90_ms"] = summary.get("latency_ms", {}).get("p90")
        row["runtime"] = f"{summary.get('runtime')} {summary.get('runtime_version')}"
        row["xnnpack"] = summary.get("xnnpack")
    for row in rows:
        same = [r for r in rows if r["model"] == row["model"]]
        base = same[0]  # unpruned
        control = same[1] if args.finetune_epochs > 0 else base  # unpruned + fine-tuning
        row["speedup"] = (
            base["p50_ms"] / row["p50_ms"] if base["p50_ms"] and row["p50_ms"] else None
        )
        for key in ("test_auroc_int8", "val_auroc"):
            for ref, suffix in ((base, "delta"), (control, "delta_control")):
                row[f"{key}_{suffix}"] = (
                    row[key] - ref[key] if row[key] is not None and ref[key] is not None else None
                )
    return {
        "data": str(args.data),
        "seed": args.seed,
        "seeds": args.seeds,
        "finetune_epochs": args.finetune_epochs,
        "finetune_recipe": {
            "augment": list(recipe.augment),
            "lr_schedule": recipe.lr_schedule.value,
            "distill": recipe.distill,
        },
        "train_augment": {
            "reference CNN": list(args.cnn_augment),
            "MobileNetV2": list(args.mobilenet_augment),
        },
        "channel_multiple": args.channel_multiple,
        "criterion": args.criterion,
        "epochs": {"reference CNN": args.cnn_epochs, "MobileNetV2": args.mobilenet_epochs},
        "bench": {"runs": args.runs, "threads": 1, "host_cpus": os.cpu_count()},
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }


AUROC_KEYS = ("test_auroc_int8", "test_auroc_float", "val_auroc")


def _mean(values: list[Any]) -> float | None:
    return None if None in values else float(np.mean(values))


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    runtime = rows[0]["runtime"] if rows else "-"
    recipe = result["finetune_recipe"]
    lines = [
        f"int8 on BreastMNIST test (156 images), {runtime}, 1 thread, XNNPACK, "
        f"one interleaved device_bench run; training seed {result['seed']}; fine-tuned "
        f"{result['finetune_epochs']} epochs (augment {','.join(recipe['augment']) or 'none'}, "
        f"{recipe['lr_schedule']} rate, distill {recipe['distill']:g}) with seeds "
        f"{result['seed']}.."
        f"{result['seed'] + result['seeds'] - 1}, AUROCs are the mean over those seeds "
        "(range in brackets):",
        "",
        "| model | variant | channels removed | params | MACs | int8 bytes | p50 ms | p90 ms "
        "| speedup (p50) | test AUROC int8 [range] | Δ vs unpruned (95% CI) "
        "| Δ vs unpruned + ft | test AUROC float | val AUROC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        removed = (
            f"{r['removed_channels']} ({r['achieved_sparsity']:.0%})"
            if r["removed_channels"]
            else "0"
        )
        lines.append(
            f"| {r['model']} | {r['variant']} | {removed} | {r['params']:,} | "
            f"{_fmt(r['macs'], ',')} | {r['int8_bytes']:,} | {_fmt(r['p50_ms'])} | "
            f"{_fmt(r['p90_ms'])} | {_fmt(r['speedup'], '.2f')}x | "
            f"{_fmt(r['test_auroc_int8'])} {_range(r)} | "
            f"{_fmt(r['test_auroc_int8_delta'], '+.4f')} "
            f"{_ci(r)} | {_fmt(r['test_auroc_int8_delta_control'], '+.4f')} | "
            f"{_fmt(r['test_auroc_float'])} | "
            f"{_fmt(r['val_auroc'])} |"
        )
    lines += ["", f"({result['seconds']} s)"]
    return "\n".join(lines)


def _range(row: dict[str, Any]) -> str:
    if row["seeds"] < 2 or row["test_auroc_int8_range"] is None:
        return ""
    low, high = row["test_auroc_int8_range"]
    return f"[{low:.3f}, {high:.3f}]"


def _ci(row: dict[str, Any]) -> str:
    if row["baseline"] or row["test_auroc_int8_delta_ci95"] is None:
        return ""
    low, high = row["test_auroc_int8_delta_ci95"]
    return f"[{low:+.3f}, {high:+.3f}]"


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _variants(text: str) -> list[tuple[int, float, str | None]]:
    """ "D:R[:criterion],..." -> [(residual branches dropped, channel sparsity, criterion)]."""
    out = []
    for item in text.split(","):
        if item.strip():
            blocks, sparsity, *criterion = item.split(":")
            out.append((int(blocks), float(sparsity), criterion[0] if criterion else None))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cnn-epochs", type=int, default=60)
    parser.add_argument("--mobilenet-epochs", type=int, default=60)
    parser.add_argument(
        "--cnn-augment",
        type=_names,
        default=(),
        help="train the reference CNN on randomly transformed images (e.g. hflip,shift) with "
        "a cosine learning rate (default: plain Adam, no augmentation)",
    )
    parser.add_argument(
        "--mobilenet-augment", type=_names, default=("hflip", "shift"), help="likewise"
    )
    parser.add_argument("--finetune-epochs", type=int, default=40)
    parser.add_argument(
        "--augment",
        type=_names,
        default=("hflip", "shift"),
        help="fine-tuning: random image transforms (--structured-augment; '' for none)",
    )
    parser.add_argument(
        "--lr-schedule", choices=["constant", "cosine"], default="cosine",
        help="fine-tuning learning rate (--structured-lr-schedule)",
    )  # fmt: skip
    parser.add_argument(
        "--distill", type=float, default=0.5,
        help="fine-tuning: weight of the unpruned model's probabilities (--structured-distill)",
    )  # fmt: skip
    parser.add_argument(
        "--cnn-variants",
        type=_variants,
        default=_variants("0:0.5:l1,0:0.5:activation,0:0.75:l1"),
        help="comma-separated D:R[:criterion]: residual branches dropped, channel sparsity, "
        "channel criterion (default --criterion)",
    )
    parser.add_argument(
        "--mobilenet-variants",
        type=_variants,
        default=_variants(
            "0:0.75:activation,10:0.5:activation,10:0.55:activation,10:0.6:activation"
        ),
    )
    parser.add_argument("--channel-multiple", type=int, default=8)
    parser.add_argument("--criterion", choices=["l1", "l2", "activation"], default="activation")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="fine-tune every variant with this many seeds (seed, seed+1, ...); AUROC is "
        "their mean",
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time each model with every residual branch dropped and every layer at its "
        "minimum width (not fine-tuned): the fastest structured pruning can make it",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(
            f"skipped: BreastMNIST not found at {args.data}; pass --data PATH or set "
            "BEDSIDE_BREASTMNIST.",
            file=sys.stderr,
        )
        return 0
    result = run(args)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
