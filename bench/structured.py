"""Int8 latency of structured-pruned vs unpruned models on BreastMNIST, and its AUROC cost.

Two architectures are trained from scratch on the BreastMNIST train split, once per
training seed (`--train-seeds`, default 0,1,2: a single trained model's test AUROC moves by
several hundredths with its seed, as much as the effects measured here):

- the reference CNN of bench/prune_sweep.py (28x28x1; three convolutions, two dense;
  60 epochs of Adam 1e-3);
- MobileNetV2 alpha 0.35 at 96x96x3 (keras.applications, weights=None, one sigmoid unit,
  BatchNormalization momentum 0.9), fed as the build feeds it: resized to 96x96 on the
  host, gray repeated to RGB, scaled to [-1, 1]; 60 epochs on randomly mirrored and shifted
  images with a cosine-decayed rate (without them it overfits the 546 images: test AUROC
  0.77 instead of 0.86).

Each trained model is then fine-tuned once more with the recipe below, distilling from
itself (`--base-finetune-epochs`, default 40): that model is the unpruned reference and the
teacher of every variant. Without that step the reference is undertrained: the same
fine-tuning lifts it by up to 0.11 AUROC, and every variant looks better against it than it
is.

From every trained model, each variant D:R[:criterion] is made by the pipeline's own step
(`pipeline.prune.structured`): drop the D residual branches that add least, then remove the
fraction R of channels (global scope, `--channel-multiple`, criterion l1 or activation);
the rebuilt model is fine-tuned by the pipeline's helper (`--seeds` times, default once)
with the recipe of `--structured-augment hflip --structured-augment shift
--structured-lr-schedule cosine --structured-distill 0.5` (40 epochs), distilling from the
reference. The reference is fine-tuned the same way once more as a control ("unpruned +
fine-tuning"): how much extra training alone still gives. Every model is
quantized to full-integer int8 as the build does (`calibration_indices`, `to_int8`), run on
the test split with device_bench's runner, and scored with `pipeline.evaluate.metrics` (AUROC,
malignant = class 0 positive). A variant's difference to the unpruned (or control) model is
taken within each trained model and averaged, with a paired-bootstrap interval over test
images. One int8 file per variant and trained model (the control's has the unpruned
shapes and is not timed) is timed in ONE interleaved device_bench run at 1 thread
(`pipeline.device.client.bench`), so machine drift hits them alike; the speedup is
taken within each trained model. Prints markdown tables.

    PYTHONPATH=. python bench/structured.py [--data PATH] [--json results.json]

A benchmark, not a test: about 65 minutes on two cores.
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
    from pipeline.config import DataConfig
    from pipeline.data.dataset import load
    from pipeline.data.fit import fit_to_model

    if size is None:
        raw = load(DataConfig(path=path), positive_class=MALIGNANT)
        return fit_to_model(raw, (None, 28, 28, 1), str(path))
    raw = load(
        DataConfig(path=path, resize=(size, size), scale=1 / 127.5, offset=-1.0),
        positive_class=MALIGNANT,
    )
    return fit_to_model(raw, (None, size, size, 3), str(path))


def train(
    build: Any, splits: Any, epochs: int, seed: int, augment: tuple[str, ...] = ()
) -> tuple[Any, float]:
    """Trains from scratch with Adam(1e-3); with `augment`, on randomly transformed images
    (the pipeline's augmenter) and a learning rate decayed to 0 along a cosine."""
    import keras

    from pipeline.config import LrSchedule
    from pipeline.models import output_kind
    from pipeline.prune.finetune import FinetuneRecipe, finetune

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
        recipe = FinetuneRecipe(epochs, augment, LrSchedule.COSINE)
        finetune(model, splits, output_kind(model), recipe, seed=seed)
    return model, time.perf_counter() - start


def val_auroc(splits: Any, kind: Any) -> Any:
    from pipeline.evaluate.metrics import evaluate, probabilities

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
    from pipeline.evaluate.metrics import evaluate, probabilities
    from pipeline.quantize.ptq import calibration_indices

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
    groups: list[tuple[list[np.ndarray], list[np.ndarray]]],
    samples: int = 2000,
    seed: int = 0,
) -> list[float]:
    """95% paired-bootstrap interval of the mean over `groups` (one per trained model) of
    mean AUROC(others) - mean AUROC(references), resampling the test images (the same
    resample for every model)."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(y) == MALIGNANT
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(samples):
        idx = rng.integers(0, len(truth), len(truth))
        if truth[idx].all() or not truth[idx].any():
            continue

        def auroc(scores: list[np.ndarray], idx: np.ndarray = idx) -> float:
            return float(np.mean([roc_auc_score(truth[idx], s[idx]) for s in scores]))

        deltas.append(np.mean([auroc(others) - auroc(refs) for refs, others in groups]))
    return [float(v) for v in np.percentile(deltas, [2.5, 97.5])]


def finetuned_copy(model: Any, splits: Any, kind: Any, recipe: Any, seed: int, teacher: Any) -> Any:
    """A copy of `model` fine-tuned by the pipeline's helper (the build's fine-tuning) with
    a FinetuneRecipe, distilling from `teacher`."""
    import keras

    from pipeline.prune.finetune import finetune

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    finetune(copy, splits, kind, recipe, teacher=teacher, seed=seed)
    return copy


def finetune_recipe(args: argparse.Namespace, epochs: int) -> Any:
    """The build's structured fine-tuning recipe as given on the command line."""
    from pipeline.prune.finetune import FinetuneRecipe

    return FinetuneRecipe(
        epochs, tuple(dict.fromkeys(args.augment)), args.lr_schedule, args.distill
    )


def variants_of_model(
    model: Any, splits: Any, kind: Any, args: argparse.Namespace, variants_of: Any, seed: int
) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """(label, one Keras model per fine-tuning seed, details) for the unpruned model, the
    fine-tuned control, each structured variant (rebuilt, then fine-tuned) and the floor."""
    from pipeline.config import StructuredConfig
    from pipeline.prune import structured

    score = val_auroc(splits, kind)
    recipe = finetune_recipe(args, args.finetune_epochs)
    seeds = range(seed, seed + args.seeds)

    def tuned(start: Any) -> list[Any]:
        """One fine-tuned copy of `start` per seed, distilled from the unpruned model."""
        if args.finetune_epochs <= 0:
            return [start]
        return [finetuned_copy(start, splits, kind, recipe, s, model) for s in seeds]

    unchanged = {"removed_channels": 0, "achieved_sparsity": 0.0}
    out = [("unpruned", [model], {**unchanged, "baseline": True})]
    if args.finetune_epochs > 0:
        label = f"unpruned + fine-tuning ({args.finetune_epochs} ep)"
        out.append((label, tuned(model), {**unchanged, "control": True, "finetuned": True}))
    for blocks, sparsity, criterion in variants_of:
        config = StructuredConfig(
            sparsity=sparsity or None,
            drop_blocks=blocks,
            criterion=criterion or args.criterion,
            channel_multiple=args.channel_multiple,
        )
        outcome = structured.prune_structured(  # rebuilt, not yet fine-tuned
            model, splits, kind, config, score=score, seed=seed
        )
        parts = [f"{blocks} residual branches dropped"] if blocks else []
        if sparsity:
            parts.append(f"R={sparsity:g} {config.criterion.value}, M={args.channel_multiple}")
        details = {
            "drop_blocks": blocks,
            "criterion": config.criterion.value,
            "removed_channels": outcome.removed_channels,
            "achieved_sparsity": outcome.achieved_sparsity,
            "rebuild_max_abs_diff": outcome.rebuild_max_abs_diff,
            "val_auroc_before_finetune": outcome.val_auroc["pruned"],
            "finetuned": args.finetune_epochs > 0,
        }
        out.append((f"structured {', '.join(parts)}", tuned(outcome.model), details))
    if args.floor:
        branches = len(structured.residual_branches(model))
        config = StructuredConfig(
            sparsity=0.99, drop_blocks=branches, channel_multiple=args.channel_multiple
        )
        outcome = structured.prune_structured(model, splits, kind, config, score=score, seed=seed)
        dropped = f"{branches} residual branches dropped, " if branches else ""
        details = {
            "floor": True,
            "drop_blocks": branches,
            "removed_channels": outcome.removed_channels,
            "achieved_sparsity": outcome.achieved_sparsity,
        }
        label = f"floor: {dropped}every layer at its minimum width (latency only)"
        out.append((label, [outcome.model], details))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from pipeline.config import BenchConfig
    from pipeline.device.client import bench as run_device_bench
    from pipeline.device.local import summarize
    from pipeline.models import output_kind
    from pipeline.prune.macs import total_macs

    tf.config.experimental.enable_op_determinism()
    started = time.perf_counter()
    specs = [
        ("reference CNN", reference_cnn, None, args.cnn_epochs, args.cnn_augment,
         args.cnn_variants),
        ("MobileNetV2-0.35 96x96", mobilenet_v2, 96, args.mobilenet_epochs,
         args.mobilenet_augment, args.mobilenet_variants),
    ]  # fmt: skip
    runs: list[dict[str, Any]] = []  # one per (model, variant, training seed, fine-tuning seed)
    truth: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="structured-bench-") as tmp:
        files: list[Path] = []
        for name, build, size, epochs, augment, variants_of in specs:
            splits = load_splits(args.data, size)
            truth[name] = splits.y_test
            for train_seed in args.train_seeds:
                model, seconds = train(build, splits, epochs, train_seed, augment)
                kind = output_kind(model)
                score = val_auroc(splits, kind)
                if args.base_finetune_epochs > 0:  # the unpruned reference, trained further
                    recipe = finetune_recipe(args, args.base_finetune_epochs)
                    model = finetuned_copy(
                        model, splits, kind, recipe, BASE_FINETUNE_SEED + train_seed, model
                    )
                extra_epochs = f" + {args.base_finetune_epochs} of the recipe"
                print(f"{name} seed {train_seed}: trained {epochs} epochs in {seconds:.0f} s"
                      f"{extra_epochs if args.base_finetune_epochs > 0 else ''}",
                      file=sys.stderr)  # fmt: skip
                for variant, keras_models, extra in variants_of_model(
                    model, splits, kind, args, variants_of, train_seed
                ):
                    for k, keras_model in enumerate(keras_models):
                        path = Path(tmp) / f"{len(runs):03d}.tflite"
                        metrics, scores = to_int8_file(keras_model, splits, kind, path, train_seed)
                        timed = k == 0 and not extra.get("control")  # same shapes as unpruned
                        if timed:
                            files.append(path)
                        if extra.get("floor"):  # not fine-tuned: its AUROC says nothing
                            metrics.update(dict.fromkeys(AUROC_KEYS))
                        else:
                            metrics["val_auroc"] = score(keras_model)
                        runs.append({
                            "model": name, "variant": variant, "train_seed": train_seed,
                            "finetune_seed": train_seed + k if extra.get("finetuned") else None,
                            "params": int(keras_model.count_params()),
                            "macs": total_macs(keras_model), **extra, **metrics,
                            "scores": scores, "file": str(path) if timed else None,
                        })  # fmt: skip
                        print(f"  {variant} [{train_seed}/{k}]: test AUROC int8 "
                              f"{fmt(metrics['test_auroc_int8'])}", file=sys.stderr)  # fmt: skip
        bench_config = BenchConfig(
            runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds, threads=1
        )
        report = run_device_bench(files, bench_config)
    by_file = {
        str(path): summarize(entry) for path, entry in zip(files, report["models"], strict=True)
    }
    for entry in runs:
        summary = by_file.get(entry["file"] or "", {})
        entry["bench_status"] = summary.get("status")
        entry["p50_ms"] = summary.get("latency_ms", {}).get("p50")
        entry["p90_ms"] = summary.get("latency_ms", {}).get("p90")
        if summary:
            entry["runtime"] = f"{summary.get('runtime')} {summary.get('runtime_version')}"
    return {
        "data": str(args.data),
        "train_seeds": list(args.train_seeds),
        "finetune_seeds_per_model": args.seeds,
        "finetune_epochs": args.finetune_epochs,
        "base_finetune_epochs": args.base_finetune_epochs,
        "finetune_recipe": {
            "augment": list(args.augment),
            "lr_schedule": args.lr_schedule,
            "distill": args.distill,
        },
        "train_augment": {
            "reference CNN": list(args.cnn_augment),
            "MobileNetV2": list(args.mobilenet_augment),
        },
        "channel_multiple": args.channel_multiple,
        "criterion": args.criterion,
        "epochs": {"reference CNN": args.cnn_epochs, "MobileNetV2": args.mobilenet_epochs},
        "bench": {"runs": args.runs, "threads": 1, "host_cpus": os.cpu_count()},
        "rows": aggregate(runs, truth),
        "runs": [{k: v for k, v in r.items() if k not in ("scores", "file")} for r in runs],
        "seconds": round(time.perf_counter() - started, 1),
    }


def aggregate(runs: list[dict[str, Any]], truth: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One row per (model, variant): AUROC means over every trained model and fine-tuning
    seed; differences to the unpruned model (and to the fine-tuned control) taken within
    each trained model, then averaged, with a paired-bootstrap interval; speedups taken
    within each trained model's files of the one interleaved run."""
    rows = []
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]

        def of(variant: str, seed: int, mine: list[dict[str, Any]] = mine) -> list[dict[str, Any]]:
            return [r for r in mine if r["variant"] == variant and r["train_seed"] == seed]

        seeds = list(dict.fromkeys(r["train_seed"] for r in mine))

        def auroc_by_seed(variant: str, seeds: list[int] = seeds) -> list[float | None]:
            """Test AUROC int8 of each trained model's variant, mean over fine-tuning seeds."""
            return [_mean([r["test_auroc_int8"] for r in of(variant, s)]) for s in seeds]

        base = next(r["variant"] for r in mine if r.get("baseline"))
        control = next((r["variant"] for r in mine if r.get("control")), base)
        for variant in dict.fromkeys(r["variant"] for r in mine):
            these = [r for r in mine if r["variant"] == variant]
            first = these[0]
            row: dict[str, Any] = {
                "model": name,
                "variant": variant,
                **{k: first[k] for k in FIRST_MODEL_KEYS if k in first},
                "floor": bool(first.get("floor")),
                "baseline": variant == base,
                "trained_models": len(seeds),
                "finetune_runs": len(these),
                "rebuild_max_abs_diff": max(
                    (r["rebuild_max_abs_diff"] for r in these if "rebuild_max_abs_diff" in r),
                    default=None,
                ),
            }
            p50 = {s: of(variant, s)[0].get("p50_ms") for s in seeds}  # first fine-tuning seed
            row["speedup_by_seed"] = [
                of(base, s)[0]["p50_ms"] / p50[s] if p50[s] and of(base, s)[0]["p50_ms"] else None
                for s in seeds
            ]
            speedups = [v for v in row["speedup_by_seed"] if v is not None]
            timed = [v for v in p50.values() if v]
            row["p50_ms"] = float(np.mean(timed)) if timed else None
            row["speedup"] = float(np.mean(speedups)) if speedups else None
            row["speedup_range"] = [min(speedups), max(speedups)] if speedups else None
            for key in AUROC_KEYS:
                row[key] = _mean([r[key] for r in these])
            if row["floor"]:
                rows.append(row)
                continue
            row["test_auroc_int8_by_seed"] = mine_by_seed = auroc_by_seed(variant)
            values = [r["test_auroc_int8"] for r in these]
            row["test_auroc_int8_range"] = [min(values), max(values)]
            for ref, suffix in ((base, "delta"), (control, "delta_control")):
                groups = [
                    ([r["scores"] for r in of(ref, s)], [r["scores"] for r in of(variant, s)])
                    for s in seeds
                ]
                row[f"test_auroc_int8_{suffix}"] = float(
                    np.mean(np.subtract(mine_by_seed, auroc_by_seed(ref)))
                )
                row[f"test_auroc_int8_{suffix}_ci95"] = (
                    None if variant == ref else auroc_delta_ci(truth[name], groups)
                )
            rows.append(row)
    return rows


BASE_FINETUNE_SEED = 1000  # + training seed: apart from the variants' fine-tuning seeds
FIRST_MODEL_KEYS = ("removed_channels", "achieved_sparsity", "params", "macs", "int8_bytes")
AUROC_KEYS = ("test_auroc_int8", "test_auroc_float", "val_auroc")


def _mean(values: list[Any]) -> float | None:
    return None if None in values else float(np.mean(values))


def fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    runtime = next((r["runtime"] for r in result["runs"] if r.get("runtime")), "-")
    recipe = result["finetune_recipe"]
    seeds = result["train_seeds"]
    lines = [
        f"int8 on BreastMNIST test (156 images), {runtime}, 1 thread, XNNPACK, one interleaved "
        f"device_bench run. {len(seeds)} trained models per architecture (training seeds "
        f"{', '.join(map(str, seeds))}); each variant fine-tuned {result['finetune_epochs']} "
        f"epochs (augment {','.join(recipe['augment']) or 'none'}, {recipe['lr_schedule']} "
        f"rate, distill {recipe['distill']:g}) {result['finetune_seeds_per_model']} time(s) per "
        "trained model. AUROC: mean over all of them [range]. Δ: taken within each trained "
        "model, then averaged (95% paired-bootstrap interval over test images). Speedup: p50 of "
        "the unpruned file / p50 of the variant's, within each trained model, mean [range]. "
        "Channels, params, MACs and bytes: the first trained model's.",
        "",
        "| model | variant | channels removed | params | MACs | int8 bytes | p50 ms "
        "| speedup (p50) [range] | test AUROC int8 [range] | Δ vs unpruned (95% CI) "
        "| Δ vs unpruned + ft (95% CI) | test AUROC float | val AUROC |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        removed = (
            f"{r['removed_channels']} ({r['achieved_sparsity']:.0%})"
            if r["removed_channels"]
            else "0"
        )
        lines.append(
            f"| {r['model']} | {r['variant']} | {removed} | {r['params']:,} | "
            f"{fmt(r['macs'], ',')} | {r['int8_bytes']:,} | {fmt(r['p50_ms'])} | "
            f"{_speedup(r['speedup'])} {fmt_pair(r['speedup_range'], '.2f')} | "
            f"{fmt(r['test_auroc_int8'])} {fmt_pair(r.get('test_auroc_int8_range'))} | "
            f"{_delta(r, 'delta')} | {_delta(r, 'delta_control')} | "
            f"{fmt(r['test_auroc_float'])} | {fmt(r['val_auroc'])} |"
        )
    lines += [
        "",
        "Per trained model: test AUROC int8 (mean over its fine-tuning seeds) and speedup:",
        "",
        "| model | variant | " + " | ".join(f"training seed {s}" for s in seeds) + " |",
        "|---|---|" + "---:|" * len(seeds),
    ]
    for r in rows:
        cells = []
        for i in range(len(seeds)):
            auroc = (r.get("test_auroc_int8_by_seed") or [None] * len(seeds))[i]
            speed = r["speedup_by_seed"][i]
            cells.append(f"{fmt(auroc)} ({_speedup(speed)})")
        lines.append(f"| {r['model']} | {r['variant']} | " + " | ".join(cells) + " |")
    lines += ["", f"({result['seconds']} s)"]
    return "\n".join(lines)


def _speedup(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def fmt_pair(pair: list[float] | None, spec: str = ".3f") -> str:
    return "" if pair is None else f"[{pair[0]:{spec}}, {pair[1]:{spec}}]"


def _delta(row: dict[str, Any], suffix: str) -> str:
    value = row.get(f"test_auroc_int8_{suffix}")
    ci = row.get(f"test_auroc_int8_{suffix}_ci95")
    return f"{fmt(value, '+.4f')} {fmt_pair(ci, '+.3f')}".strip()


def split_names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def parse_variants(text: str) -> list[tuple[int, float, str | None]]:
    """ "D:R[:criterion],..." -> [(residual branches dropped, channel sparsity, criterion)]."""
    out = []
    for item in text.split(","):
        if item.strip():
            blocks, sparsity, *criterion = item.split(":")
            out.append((int(blocks), float(sparsity), criterion[0] if criterion else None))
    return out


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli.arguments import add_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cnn-epochs", type=int, default=60)
    parser.add_argument("--mobilenet-epochs", type=int, default=60)
    parser.add_argument(
        "--cnn-augment",
        type=split_names,
        default=(),
        help="train the reference CNN on randomly transformed images (e.g. hflip,shift) with "
        "a cosine learning rate (default: plain Adam, no augmentation)",
    )
    parser.add_argument(
        "--mobilenet-augment", type=split_names, default=("hflip", "shift"), help="likewise"
    )
    parser.add_argument(
        "--base-finetune-epochs",
        type=int,
        default=40,
        help="after training, fine-tune each trained model this many epochs with the recipe "
        "below, distilling from itself; that model is the unpruned reference and the teacher "
        "(0: the trained model itself, which the recipe then lifts by 0.005-0.11 AUROC: an "
        "undertrained reference flatters every variant)",
    )
    parser.add_argument("--finetune-epochs", type=int, default=40)
    parser.add_argument(
        "--augment",
        type=split_names,
        default=("hflip", "shift"),
        help="fine-tuning: random image transforms (--structured-augment; '' for none)",
    )
    # the build's options, under this script's names and defaults
    add_option(parser, "structured_lr_schedule", "--lr-schedule", default="cosine")
    add_option(parser, "structured_distill", "--distill", default=0.5)
    parser.add_argument(
        "--cnn-variants",
        type=parse_variants,
        default=parse_variants("0:0.5:l1,0:0.5:activation,0:0.75:l1"),
        help="comma-separated D:R[:criterion]: residual branches dropped, channel sparsity, "
        "channel criterion (default --criterion)",
    )
    parser.add_argument(
        "--mobilenet-variants",
        type=parse_variants,
        default=parse_variants("0:0.75:activation,10:0.5:activation,10:0.6:activation"),
    )
    add_option(parser, "channel_multiple", "--channel-multiple", default=8)
    add_option(parser, "structured_criterion", "--criterion", default="activation")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument(
        "--train-seeds",
        type=lambda text: [int(s) for s in split_names(text)],
        default=[0, 1, 2],
        help="train each architecture once per seed (comma-separated); every variant is made "
        "from each trained model, and its differences are taken within that model",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="fine-tune every variant of a trained model with this many seeds (its training "
        "seed, +1, ...); AUROC is the mean over all",
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
