"""AUROC vs sparsity of threshold pruning on BreastMNIST, judged as int8 .tflite files.

A small reference CNN is trained briefly (fixed seed) on the BreastMNIST train split, then
pruned at each sparsity three ways, each starting from the same trained weights:

- oneshot, no fine-tuning: w' = w * 1{|w| >= tau}, tau the global S-quantile of |w|;
- oneshot + fine-tuning: the same masks held through `--finetune-epochs` epochs;
- polynomial: the sparsity rises cubically to S over the same epochs.

Each pruned model is quantized to full-integer int8 with the pipeline's own code
(calibration choice from pipeline/quantization.py, converters/tflite.py `to_int8`), run on
the test split with device_bench's runner, and scored with pipeline/evaluation.py (AUROC,
malignant = class 0 as the positive class). Prints a markdown table.

    PYTHONPATH=. python bench/prune_sweep.py [--data PATH] [--json results.json]

This is a benchmark, not a test: it takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.workloads import reference_cnn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(
    os.environ.get("BEDSIDE_BREASTMNIST", ROOT.parent / "shared" / "data" / "breastmnist.npz")
)
MALIGNANT = 0  # BreastMNIST: 0 = malignant, 1 = normal or benign


def train(splits: Any, epochs: int, seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    model = reference_cnn(tuple(splits.model_inputs("train").shape[1:]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    model.fit(
        splits.model_inputs("train"),
        splits.y_train.astype(np.float32),
        validation_data=(splits.model_inputs("val"), splits.y_val.astype(np.float32)),
        epochs=epochs,
        batch_size=32,
        shuffle=True,
        verbose=0,
    )
    return model


def val_auroc(splits: Any, kind: Any) -> Any:
    from pipeline.evaluate.metrics import evaluate, probabilities

    def score(model: Any) -> float | None:
        out = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
        probs = probabilities(out, kind)
        return evaluate(probs, splits.y_val, positive_class=MALIGNANT)["auroc"]

    return score


def int8_test_metrics(
    model: Any, splits: Any, kind: Any, workdir: Path, name: str, seed: int
) -> dict[str, Any]:
    """Quantizes to int8 as the build does and evaluates the file on the test split."""
    from converters.tflite import to_int8
    from device_bench.runner import run_model
    from pipeline.evaluate.metrics import evaluate, probabilities
    from pipeline.quantize.ptq import calibration_indices

    idx = calibration_indices(splits.y_train, 200, seed)
    data = to_int8(model, splits.model_inputs("train")[idx])
    path = workdir / f"{name}.tflite"
    path.write_bytes(data)
    outputs = run_model(path, splits.model_inputs("test")).outputs
    metrics = evaluate(probabilities(outputs, kind), splits.y_test, positive_class=MALIGNANT)
    return {
        "test_auroc_int8": metrics["auroc"],
        "test_sensitivity_int8": metrics["sensitivity"],
        "int8_bytes": len(data),
        "int8_gzip_bytes": len(gzip.compress(data, 9)),
    }


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from pipeline import prune as pruning
    from pipeline.config import DataConfig, PruneConfig, PruneSchedule
    from pipeline.data.dataset import load
    from pipeline.data.fit import fit_to_model
    from pipeline.models import output_kind

    tf.config.experimental.enable_op_determinism()
    raw = load(DataConfig(path=args.data), positive_class=MALIGNANT)
    started = time.perf_counter()
    splits = fit_to_model(raw, (None, 28, 28, 1), str(args.data))
    model = train(splits, args.epochs, args.seed)
    kind = output_kind(model)
    score = val_auroc(splits, kind)
    original = model.get_weights()
    methods = {
        "oneshot, no fine-tuning": None,
        f"oneshot + fine-tuning ({args.finetune_epochs} ep)": PruneSchedule.ONESHOT,
        f"polynomial ({args.finetune_epochs} ep)": PruneSchedule.POLYNOMIAL,
    }
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="prune-sweep-") as tmp:
        workdir = Path(tmp)
        model.set_weights(original)
        base = {
            "val_auroc": score(model),
            "achieved_sparsity": 0.0,
            **int8_test_metrics(model, splits, kind, workdir, "base", args.seed),
        }
        for sparsity in args.sparsities:
            for method, schedule in methods.items():
                if sparsity == 0:  # every method ships the unpruned model
                    rows.append({"method": method, "sparsity": 0.0, **base})
                    continue
                model.set_weights(original)
                if schedule is None:
                    config = PruneConfig(target_sparsity=sparsity)
                else:
                    config = PruneConfig(
                        target_sparsity=sparsity,
                        schedule=schedule,
                        finetune_epochs=args.finetune_epochs,
                    )
                outcome = pruning.prune_model(
                    model, splits, kind, config, score=score, seed=args.seed
                )
                rows.append(
                    {
                        "method": method,
                        "sparsity": sparsity,
                        "val_auroc": score(model),
                        "achieved_sparsity": outcome.achieved_sparsity,
                        **int8_test_metrics(
                            model, splits, kind, workdir, f"{schedule}-{sparsity}", args.seed
                        ),
                    }
                )
                print(
                    f"  {method:<32} S={sparsity:<5g} test AUROC int8 "
                    f"{rows[-1]['test_auroc_int8']:.4f}",
                    file=sys.stderr,
                )
        model.set_weights(original)
        auto = pruning.prune_model(model, splits, kind, PruneConfig(), score=score).auto
    return {
        "data": str(args.data),
        "model": {"name": model.name, "parameters": int(model.count_params())},
        "train_epochs": args.epochs,
        "finetune_epochs": args.finetune_epochs,
        "seed": args.seed,
        "rows": rows,
        "auto": auto.to_json() if auto else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    sparsities = list(dict.fromkeys(r["sparsity"] for r in rows))
    cell = {(r["method"], r["sparsity"]): r for r in rows}
    lines = [
        f"Test AUROC of the int8 .tflite on BreastMNIST test ({result['model']['name']}, "
        f"{result['model']['parameters']} parameters, trained {result['train_epochs']} epochs, "
        f"seed {result['seed']}):",
        "",
        "| sparsity | " + " | ".join(methods) + " |",
        "|---:|" + "---:|" * len(methods),
    ]
    for s in sparsities:
        lines.append(
            f"| {s:g} | "
            + " | ".join(_fmt(cell[(m, s)]["test_auroc_int8"]) for m in methods)
            + " |"
        )
    lines += [
        "",
        "| method | target S | achieved S | val AUROC (Keras) | test AUROC (int8) "
        "| test sensitivity (int8) | int8 bytes | gzip bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['sparsity']:g} | {r['achieved_sparsity']:.3f} | "
            f"{_fmt(r['val_auroc'])} | {_fmt(r['test_auroc_int8'])} | "
            f"{_fmt(r['test_sensitivity_int8'])} | {r['int8_bytes']} | "
            f"{r['int8_gzip_bytes']} |"
        )
    auto = result.get("auto")
    if auto:
        curve = ", ".join(f"{p['sparsity']:g}: {_fmt(p['val_auroc'])}" for p in auto["curve"])
        lines += [
            "",
            f"`--sparsity auto` (no fine-tuning, max drop {auto['max_prune_drop']:g}, "
            f"original val AUROC {_fmt(auto['baseline_val_auroc'])}) picks "
            f"S = {auto['chosen_sparsity']:g}; val AUROC curve: {curve}.",
        ]
    lines += ["", f"({result['seconds']} s)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli.arguments import add_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="BreastMNIST .npz (default ../shared/data/breastmnist.npz)",
    )
    parser.add_argument(
        "--sparsities",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[0.0, 0.5, 0.75, 0.9],
    )
    parser.add_argument("--epochs", type=int, default=100, help="training epochs of the CNN")
    add_option(parser, "finetune_epochs", default=10)  # the build's options
    add_option(parser, "seed")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(
            f"skipped: BreastMNIST not found at {args.data}; pass --data PATH or set "
            "BEDSIDE_BREASTMNIST.",
            file=sys.stderr,
        )
        return 0
    result = sweep(args)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
