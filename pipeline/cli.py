"""Command line: `bedside-lite` (also `python -m pipeline`).

`main(argv) -> int` parses, runs and maps errors to exit codes: 0 success, 1 a release gate
failed, 2 bad input (message, no traceback), 130 interrupted. Nothing heavy is imported
before the arguments are known to be valid.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import (
    AUTO_SPARSITY,
    AUTO_SPARSITY_GRID,
    FINETUNE_AUGMENTATIONS,
    GATE_LIMITS,
    BenchConfig,
    BuildConfig,
    DataConfig,
    DeviceConfig,
    EvaluationConfig,
    ExportConfig,
    GatesConfig,
    LrSchedule,
    PruneConfig,
    PruneSchedule,
    PruneScope,
    QuantizeConfig,
    RuntimeTarget,
    StructuredConfig,
    StructuredCriterion,
)
from pipeline.errors import BedsideError


def _sparsity(value: str) -> float | str:
    """`--sparsity`: a number (range checked by PruneConfig) or 'auto'."""
    if value.strip().lower() == AUTO_SPARSITY:
        return AUTO_SPARSITY
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1) or '{AUTO_SPARSITY}', received '{value}'"
        ) from None


def _floats(value: str) -> tuple[float, ...]:
    """`--mean`/`--std`: one number, or one per channel/feature separated by commas."""
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or comma-separated numbers such as 0.485,0.456,0.406, "
            f"received '{value}'"
        ) from None


def _size(value: str) -> tuple[int, int]:
    """`--resize`: HxW (e.g. 64x64) or one number for a square."""
    try:
        parts = [int(v) for v in value.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected HxW such as 64x64, received '{value}'")
    return parts[0], parts[1]


def _class_ref(value: str) -> int | str:
    """`--positive-class`: a class index or a class name."""
    return int(value) if value.strip().lstrip("-").isdigit() else value


def _list(item: Callable[[str], Any], choices: Sequence[str] = ()) -> Callable[[str], list[Any]]:
    """A comma-separated list of `item` values (sweep axes)."""

    def parse(value: str) -> list[Any]:
        try:
            out = [item(v.strip()) for v in value.split(",") if v.strip()]
        except (ValueError, argparse.ArgumentTypeError):
            out = []
        if not out or (choices and not all(v in choices for v in out)):
            allowed = f" from {', '.join(choices)}" if choices else ""
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values{allowed}, received '{value}'"
            )
        return out

    return parse


def _gate(value: str) -> tuple[str, Any]:
    """`--gate KEY=VALUE`; an unknown key or a bad value is a ConfigError naming it."""
    from pipeline.jobfile import gate_assignment

    return gate_assignment(value)


def _release_arguments(p: argparse.ArgumentParser) -> None:
    """Options `build` and `sweep` share: job file, gates, output verbosity."""
    from pipeline.jobfile import GATE_KEYS

    p.add_argument(
        "--config",
        type=Path,
        metavar="JOB_TOML",
        help="TOML job file holding every option (`bedside-lite init` writes one); "
        "flags passed on the command line override it",
    )
    p.add_argument(
        "--gate",
        action="append",
        type=_gate,
        metavar="KEY=VALUE",
        help="release gate, repeatable; exit 1 when one fails. Keys: " + ", ".join(GATE_KEYS),
    )
    p.add_argument("--json", action="store_true", help="print the report to stdout")
    p.add_argument("--quiet", action="store_true", help="no progress and no table")


def _device_arguments(p: argparse.ArgumentParser) -> None:
    """Options `build` and `bench` share: bedside devices reached over SSH."""
    p.add_argument(
        "--device",
        action="append",
        metavar="ssh://USER@HOST[:PORT]|NAME",
        help="also run on this bedside device over SSH (system ssh client); an address or "
        "a name in --devices; repeatable in build",
    )
    p.add_argument(
        "--devices",
        type=Path,
        metavar="INVENTORY_TOML",
        help="device inventory: [devices.NAME] tables with ssh, identity, python, threads",
    )
    p.add_argument("--identity", type=Path, metavar="KEY", help="SSH private key (ssh -i)")
    p.add_argument(
        "--device-python",
        metavar="PATH",
        help="the device's Python with numpy and a LiteRT runtime (default python3)",
    )
    p.add_argument(
        "--known-hosts",
        type=Path,
        metavar="FILE",
        help="known_hosts file with the device's host key (default: ssh's own)",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise BedsideError(f"{self.prog}: {message}. See '{self.prog} --help'.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bedside-lite", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("build", help="prune, quantize to int8, verify, evaluate, bench, report")
    b.add_argument(
        "--model",
        type=Path,
        help="Keras 3 model (.keras, .h5) or SavedModel dir; "
        "default: train the embedded reference classifier",
    )
    b.add_argument(
        "--data",
        type=Path,
        metavar="PATH|medmnist:NAME[@SIZE]",
        help=".npz (MedMNIST layout or x/y), medmnist:NAME[@SIZE] (Keras cache, "
        "downloaded once), folder of PNG/JPEG or DICOM files (class subfolders or "
        "--labels CSV), or tabular .csv; default: embedded WDBC",
    )
    b.add_argument("--out", type=Path, default=Path("build"), help="output dir (default build/)")
    group = b.add_mutually_exclusive_group()
    group.add_argument(
        "--sparsity",
        type=_sparsity,
        metavar="S|auto",
        help="target sparsity S in [0, 1), 0 skips pruning; 'auto' (default): "
        f"the largest of {', '.join(f'{s:g}' for s in AUTO_SPARSITY_GRID)} "
        "keeping validation AUROC within --max-prune-drop",
    )
    group.add_argument("--threshold", type=float, help="absolute magnitude threshold tau >= 0")
    b.add_argument(
        "--prune-scope",
        choices=[s.value for s in PruneScope],
        default="global",
        help="global: one tau over all kernels; layer: one per kernel",
    )
    b.add_argument("--prune-biases", action="store_true", help="also prune biases with tau")
    b.add_argument(
        "--prune-include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="prune only layers whose name matches (fnmatch, repeatable)",
    )
    b.add_argument(
        "--prune-exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="never prune layers whose name matches (fnmatch, repeatable)",
    )
    b.add_argument(
        "--keep-first-last-dense",
        action="store_true",
        help="leave the first and last prunable layer unpruned",
    )
    b.add_argument(
        "--finetune-epochs",
        type=int,
        default=0,
        help="fine-tune with the masks held, on the train split (default 0)",
    )
    b.add_argument(
        "--prune-schedule",
        choices=[s.value for s in PruneSchedule],
        default="oneshot",
        help="oneshot: prune, then fine-tune; polynomial: "
        "sparsity rises cubically over the fine-tuning steps",
    )
    b.add_argument(
        "--initial-sparsity",
        type=float,
        default=0.0,
        help="polynomial: sparsity at the first step (default 0)",
    )
    b.add_argument(
        "--prune-frequency",
        type=int,
        default=10,
        help="polynomial: optimizer steps between mask updates (default 10)",
    )
    b.add_argument(
        "--max-prune-drop",
        type=float,
        default=0.01,
        help="auto: validation AUROC the pruned float model may lose (default 0.01)",
    )
    b.add_argument(
        "--structured-sparsity",
        type=float,
        metavar="R",
        help="structured pruning, before threshold pruning: remove the fraction R "
        "in [0, 1) of prunable Conv/Dense output channels and rebuild a smaller "
        "model (faster on the device)",
    )
    b.add_argument(
        "--structured-threshold",
        type=float,
        metavar="T",
        help="structured pruning: remove channels whose filter norm is below T "
        "times their layer's mean filter norm (instead of --structured-sparsity)",
    )
    b.add_argument(
        "--structured-criterion",
        choices=[c.value for c in StructuredCriterion],
        default="l1",
        help="ranking of channels: l1/l2 filter norm, or activation (mean |value| each "
        "reader takes from the channel on training inputs times its kernel rows' l2 "
        "norm; default l1)",
    )
    b.add_argument(
        "--structured-scope",
        choices=[s.value for s in PruneScope],
        default="global",
        help="global: one ranking over all layers (norms "
        "normalised by each layer's mean); layer: R of every layer (default global)",
    )
    b.add_argument(
        "--min-channels",
        type=int,
        default=4,
        help="structured: no layer keeps fewer than min(width, N) channels (default 4)",
    )
    b.add_argument(
        "--channel-multiple",
        type=int,
        default=1,
        metavar="M",
        help="structured: shrunk layers keep a multiple of M channels (8 or 16 "
        "match int8 kernel tiles and run faster; default 1: exact)",
    )
    b.add_argument(
        "--drop-blocks",
        type=int,
        default=0,
        metavar="N",
        help="structured: first remove the N residual branches that add least to their "
        "skip input (fewer ops, faster on the device; default 0)",
    )
    b.add_argument(
        "--structured-finetune-epochs",
        type=int,
        metavar="N",
        help="fine-tune the rebuilt model N epochs (default: --finetune-epochs)",
    )
    b.add_argument(
        "--structured-augment",
        action="append",
        default=[],
        choices=FINETUNE_AUGMENTATIONS,
        help="structured fine-tuning: random transforms of the training images (hflip, "
        "vflip: mirror half of them; shift: up to 10%%); repeatable; only for label-"
        "preserving transforms of your images (default none)",
    )
    b.add_argument(
        "--structured-lr-schedule",
        choices=[s.value for s in LrSchedule],
        default="constant",
        help="structured fine-tuning: the optimizer's learning rate throughout, or cosine "
        "decay from it to 0 (default constant)",
    )
    b.add_argument(
        "--structured-distill",
        type=float,
        default=0.0,
        metavar="W",
        help="structured fine-tuning: targets are (1-W) label + W the unpruned model's "
        "probability on the same (augmented) image (default 0: labels only)",
    )
    b.add_argument("--calibration-samples", type=int, default=200)
    b.add_argument(
        "--io",
        choices=["int8", "uint8", "float32"],
        default="int8",
        help="int8 model input/output type (float32: integer inside, float edges)",
    )
    b.add_argument(
        "--activations",
        choices=["int8", "int16"],
        default="int8",
        help="activation width (int16: the 16x8 mode)",
    )
    b.add_argument(
        "--sparse-encoding",
        action="store_true",
        help="store pruned weights sparse; kept only if every runtime verifies it",
    )
    b.add_argument(
        "--max-auroc-drop",
        type=float,
        default=0.01,
        help="int8 validation AUROC budget below the pruned float model",
    )
    b.add_argument(
        "--no-remedy",
        action="store_true",
        help="keep plain PTQ even when it breaks the AUROC budget",
    )
    b.add_argument(
        "--remedy-int16",
        action="store_true",
        help="let the remedies try int16 activations (16x8): more accurate, but "
        "not accelerated by XNNPACK (measured 40x slower on MobileNetV2-0.35)",
    )
    b.add_argument(
        "--runtime-python",
        type=Path,
        help="a Python with tflite-runtime (e.g. a numpy<2 venv): verify there too",
    )
    b.add_argument(
        "--require-runtime",
        action="append",
        default=[],
        metavar="{" + ",".join(t.value for t in RuntimeTarget) + "}|DEVICE",
        help="fail (exit 1) unless the int8 model verifies on this runtime or --device",
    )
    b.add_argument("--scale", type=float, help="input preprocessing: x * scale + offset")
    b.add_argument("--offset", type=float)
    b.add_argument(
        "--mean",
        type=_floats,
        metavar="M[,M...]",
        help="input preprocessing (x - mean) / std, scalar or per channel/feature",
    )
    b.add_argument("--std", type=_floats, metavar="S[,S...]")
    b.add_argument(
        "--resize",
        type=_size,
        metavar="HxW",
        help="resize images (bilinear); image folders default to the model's size",
    )
    b.add_argument(
        "--labels",
        type=Path,
        metavar="CSV",
        help="filename,label CSV for an image/DICOM folder (default: labels.csv)",
    )
    b.add_argument(
        "--label-column",
        default="label",
        help="label column of a tabular --data CSV or of --labels (default label)",
    )
    b.add_argument(
        "--calibration-data",
        type=Path,
        metavar="PATH",
        help="samples for int8 calibration instead of the train split; labels "
        "optional (e.g. an unlabelled image or DICOM folder)",
    )
    b.add_argument("--window-center", type=float, help="DICOM window center (with --window-width)")
    b.add_argument("--window-width", type=float, help="DICOM window width; maps onto 0..255")
    b.add_argument(
        "--window-from-file",
        action="store_true",
        help="use each DICOM file's own WindowCenter/WindowWidth",
    )
    b.add_argument(
        "--positive-class",
        type=_class_ref,
        metavar="INDEX|NAME",
        help="clinically positive class of a binary task (default: the dataset's, "
        "e.g. malignant for WDBC and BreastMNIST; else 1)",
    )
    b.add_argument(
        "--decision-threshold",
        type=float,
        default=0.5,
        help="P(positive) from which a case is called positive (default 0.5); a synonym "
        "of --operating-point threshold=T",
    )
    b.add_argument(
        "--operating-point",
        metavar="RULE",
        help="binary tasks: threshold=T (default threshold=0.5), sensitivity=S, "
        "specificity=S or youden; chosen once on the validation split from the float32 "
        "model and applied to every variant",
    )
    b.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        metavar="N",
        help="stratified bootstrap resamples of the test split for the 95%% intervals and "
        "the paired differences from float32 (default 2000; 0: none)",
    )
    b.add_argument(
        "--max-sensitivity-drop",
        type=float,
        default=0.02,
        help="validation sensitivity at the operating point that --sparsity auto and the "
        "int8 remedies may lose (default 0.02)",
    )
    b.add_argument(
        "--max-specificity-drop",
        type=float,
        default=0.05,
        help="the same for validation specificity (default 0.05)",
    )
    b.add_argument(
        "--max-brier-increase",
        type=float,
        default=0.01,
        help="validation Brier score (probability drift that moves decisions at the "
        "operating point) they may add (default 0.01; 1 turns it off)",
    )
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--bench-runs", type=int, default=100)
    b.add_argument("--threads", type=int, default=1, help="interpreter threads for the bench")
    b.add_argument("--no-bench", action="store_true", help="skip latency measurement")
    b.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    b.add_argument(
        "--unsafe-load",
        action="store_true",
        help="allow Lambda layers in --model (runs code stored in the file)",
    )
    b.add_argument(
        "--onnx",
        action="store_true",
        help="also export model_pruned_float32.onnx "
        "and model_int8.onnx with a parity check (needs bedside-lite[onnx])",
    )
    b.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    b.add_argument(
        "--require-onnx-parity",
        action="store_true",
        help="fail (exit 1) when an ONNX file does not match its source",
    )
    _release_arguments(b)
    b.add_argument(
        "--baseline",
        type=Path,
        metavar="REPORT_JSON",
        help="the previous release's report.json: gate size growth, latency "
        "regression and metric drops against it too",
    )
    b.add_argument("--html", action="store_true", help="also write report.html")
    _device_arguments(b)

    n = sub.add_parser("init", help="write a commented job file with every option")
    n.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=Path("job.toml"),
        help="where to write it (default job.toml)",
    )
    n.add_argument("--overwrite", action="store_true", help="replace an existing file")

    w = sub.add_parser(
        "sweep",
        help="grid over sparsity, schedule, calibration size and "
        "activation width: Pareto front and a recommended point, confirmed "
        "on the test split (resumable)",
    )
    w.add_argument(
        "--out",
        type=Path,
        dest="sweep_out",
        metavar="DIR",
        help="sweep dir (default sweep/; [sweep] out); finished points are kept "
        "there and skipped when the sweep runs again",
    )
    w.add_argument(
        "--sparsity",
        type=_list(_sparsity),
        dest="grid_sparsity",
        metavar="S,S,...",
        help="target sparsities, e.g. 0,0.5,0.8",
    )
    w.add_argument(
        "--threshold",
        type=_list(float),
        dest="grid_threshold",
        metavar="T,T,...",
        help="magnitude thresholds tau instead of sparsities",
    )
    w.add_argument(
        "--prune-schedule",
        type=_list(str, ("oneshot", "polynomial")),
        dest="grid_schedule",
        metavar="oneshot,polynomial",
    )
    w.add_argument(
        "--calibration-samples",
        type=_list(int),
        dest="grid_calibration_samples",
        metavar="N,N,...",
        help="calibration sizes, e.g. 100,200",
    )
    w.add_argument(
        "--activations",
        type=_list(str, ("int8", "int16")),
        dest="grid_activations",
        metavar="int8,int16",
    )
    w.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="points in parallel, each in its own process (default 1)",
    )
    w.add_argument(
        "--prefer",
        choices=["size", "latency"],
        help="recommend the smallest (default) or the fastest passing point",
    )
    w.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run each point as a task on the Ray cluster at HOST:PORT (auto: $RAY_ADDRESS) "
        "instead of local processes; needs bedside-lite[cluster]",
    )
    w.add_argument(
        "--point-cpus",
        type=float,
        metavar="N",
        help="CPUs Ray reserves for each point (default 1; with --ray)",
    )
    w.add_argument(
        "--ray-retries",
        type=int,
        metavar="N",
        help="times Ray reruns a point whose worker or node died (default 2; with --ray)",
    )
    w.add_argument("--model", type=Path, help="as for build")
    w.add_argument("--data", type=Path, help="as for build")
    w.add_argument("--finetune-epochs", type=int, help="as for build")
    w.add_argument("--seed", type=int, help="as for build")
    w.add_argument("--bench-runs", type=int, help="as for build")
    w.add_argument("--no-bench", action="store_true", help="skip latency measurement")
    _release_arguments(w)

    e = sub.add_parser(
        "export-onnx",
        help="Keras model (and int8 .tflite) to ONNX, with a "
        "parity check on seeded inputs (needs bedside-lite[onnx])",
    )
    e.add_argument("--model", type=Path, required=True, help="the (pruned) Keras model")
    e.add_argument("--tflite", type=Path, help="its int8 .tflite: also write model_int8.onnx")
    e.add_argument("--out", type=Path, required=True, help="output dir")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    e.add_argument("--json", action="store_true", help="print onnx.json to stdout")

    d = sub.add_parser(
        "bench",
        help="latency and memory of .tflite files (device_bench, "
        "each model in its own process, interleaved)",
    )
    d.add_argument("models", nargs="+", type=Path, metavar="MODEL")
    d.add_argument(
        "--runtime-python",
        type=Path,
        help="run device_bench under this Python (e.g. a venv with tflite-runtime)",
    )
    d.add_argument("--runs", type=int, default=100)
    d.add_argument("--warmup", type=int, default=10)
    d.add_argument("--min-seconds", type=float, default=0.5)
    d.add_argument("--threads", type=int, default=1)
    d.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write device_bench's JSON report to FILE (default: print it)",
    )
    _device_arguments(d)

    i = sub.add_parser("inspect", help="ops, dtypes and quantization of a .tflite file")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true")
    return parser


def _quantize_config(args: argparse.Namespace) -> QuantizeConfig:
    runtimes = [RuntimeTarget.LITERT, RuntimeTarget.LITERT_NO_DELEGATES]
    if args.runtime_python is not None:
        runtimes.append(RuntimeTarget.TFLITE_RUNTIME)
    values = {t.value for t in RuntimeTarget}
    required = tuple(RuntimeTarget(r) if r in values else r for r in args.require_runtime)
    runtimes += [r for r in required if isinstance(r, RuntimeTarget) and r not in runtimes]
    return QuantizeConfig(
        calibration_samples=args.calibration_samples,
        io=args.io,
        activations=args.activations,
        sparse_encoding=args.sparse_encoding,
        max_auroc_drop=args.max_auroc_drop,
        remedy=not args.no_remedy,
        remedy_int16=args.remedy_int16,
        runtimes=tuple(runtimes),
        require_runtimes=required,
        runtime_python=args.runtime_python,
    )


def _device_config(args: argparse.Namespace) -> DeviceConfig:
    return DeviceConfig(
        targets=tuple(args.device or ()),
        inventory=args.devices,
        identity=args.identity,
        python=args.device_python,
        known_hosts=args.known_hosts,
    )


def _build_config(args: argparse.Namespace) -> BuildConfig:
    prune = PruneConfig(  # neither --sparsity nor --threshold: auto
        target_sparsity=args.sparsity,
        threshold=args.threshold,
        scope=PruneScope(args.prune_scope),
        prune_biases=args.prune_biases,
        include=tuple(args.prune_include),
        exclude=tuple(args.prune_exclude),
        keep_first_last_dense=args.keep_first_last_dense,
        finetune_epochs=args.finetune_epochs,
        schedule=PruneSchedule(args.prune_schedule),
        initial_sparsity=args.initial_sparsity,
        prune_frequency=args.prune_frequency,
        max_prune_drop=args.max_prune_drop,
    )
    return BuildConfig(
        model=args.model,
        data=DataConfig(
            path=args.data,
            scale=args.scale,
            offset=args.offset,
            seed=args.seed,
            mean=args.mean,
            std=args.std,
            resize=args.resize,
            label_column=args.label_column,
            labels=args.labels,
            calibration=args.calibration_data,
            window_center=args.window_center,
            window_width=args.window_width,
            window_from_file=args.window_from_file,
        ),
        evaluation=EvaluationConfig(
            decision_threshold=(  # None: cleared by --operating-point over a job file's
                0.5 if args.decision_threshold is None else args.decision_threshold
            ),
            positive_class=args.positive_class,
            operating_point=args.operating_point,
            bootstrap=args.bootstrap,
            max_sensitivity_drop=args.max_sensitivity_drop,
            max_specificity_drop=args.max_specificity_drop,
            max_brier_increase=args.max_brier_increase,
        ),
        out=args.out,
        prune=prune,
        structured=StructuredConfig(
            sparsity=args.structured_sparsity,
            threshold=args.structured_threshold,
            criterion=StructuredCriterion(args.structured_criterion),
            scope=PruneScope(args.structured_scope),
            min_channels=args.min_channels,
            channel_multiple=args.channel_multiple,
            drop_blocks=args.drop_blocks,
            augment=tuple(args.structured_augment),
            lr_schedule=LrSchedule(args.structured_lr_schedule),
            distill=args.structured_distill,
            finetune_epochs=(
                args.finetune_epochs
                if args.structured_finetune_epochs is None
                else args.structured_finetune_epochs
            ),
        ),
        quantize=_quantize_config(args),
        bench=BenchConfig(runs=args.bench_runs, threads=args.threads, enabled=not args.no_bench),
        export=ExportConfig(
            onnx=args.onnx,
            opset=args.opset,
            require_parity=args.require_onnx_parity,
            html=args.html,
        ),
        gates=GatesConfig(
            baseline=args.baseline, **{n: getattr(args, f"gate_{n}", None) for n in GATE_LIMITS}
        ),
        device=_device_config(args),
        overwrite=args.overwrite,
        seed=args.seed,
        unsafe_load=args.unsafe_load,
    )


@contextlib.contextmanager
def _native_logs_captured(enabled: bool) -> Iterator[int]:
    """Sends file descriptor 2 to a temporary file while TensorFlow runs.

    TensorFlow's and the converter's C++ logging (absl) ignores TF_CPP_MIN_LOG_LEVEL at
    import time and would bury the table. Yields a duplicate of the real stderr for the
    progress display; on an unexpected error the captured log is replayed.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    if not enabled:
        yield saved
        os.close(saved)
        return
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        failed = True
        try:
            yield saved
            failed = False
        except (BedsideError, KeyboardInterrupt):
            failed = False  # the user's error or Ctrl-C: the native log is noise
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                log.seek(0)
                tail = log.read().decode(errors="replace").splitlines()[-20:]
                print("\n".join(["native log (last lines):", *tail]), file=sys.stderr)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _explicit(argv: Sequence[str], command: str) -> dict[str, Any]:
    """Only the options the user passed: the same parse with every default suppressed."""
    parser = _parser()
    for action in _subparser(parser, command)._actions:
        action.default = argparse.SUPPRESS
    passed = vars(parser.parse_args(list(argv)))
    return {k: v for k, v in passed.items() if k not in ("command", "debug")}


def _build_defaults() -> dict[str, Any]:
    from pipeline.jobfile import dests

    return dests(_subparser(_parser(), "build")._actions)


def build_options(argv: Sequence[str]) -> argparse.Namespace:
    """The `build` options of `argv` resolved: flags the user passed > job file > defaults.

    Raises:
        BedsideError: a bad flag, job file or value (before TensorFlow is imported).
    """
    from pipeline import jobfile

    args = _parser().parse_args(list(argv))
    job = jobfile.load(args.config) if args.config is not None else None
    return jobfile.resolve(_build_defaults(), _explicit(argv, "build"), job)


def build_config(argv: Sequence[str]) -> BuildConfig:
    """The validated BuildConfig `bedside-lite <argv>` would build (argv starts with build)."""
    return _build_config(build_options(argv))


def job_config(job: Mapping[str, Mapping[str, Any]]) -> BuildConfig:
    """The validated BuildConfig of a job document (sections of keys, as in a job file).

    Raises:
        ConfigError: an unknown key, a wrong type or an invalid value.
    """
    from pipeline import jobfile

    return _build_config(jobfile.resolve(_build_defaults(), {}, jobfile.parse(job)))


def _run_with_progress(
    quiet: bool, debug: bool, work: Callable[[Callable[[str], None]], Any]
) -> Any:
    """Runs `work(progress)` with a rich status line (none when quiet), native logs captured."""
    from rich.console import Console

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_logs_captured(enabled=not debug) as real_stderr:
        progress_stream = os.fdopen(os.dup(real_stderr), "w")
        console = Console(file=progress_stream, stderr=True, quiet=quiet)
        try:
            with console.status("starting") as status:
                return work(lambda stage: status.update(f"{stage}..."))
        finally:
            progress_stream.close()


def _gate_failures(gates: Mapping[str, Any]) -> int:
    """Prints each failed gate with its measured value and limit; 1 if any failed."""
    from pipeline.gates import failure_message

    failed = [c for c in gates.get("checks", []) if not c["passed"]]
    for check in failed:
        print(f"failed: {failure_message(check)}", file=sys.stderr)
    return 1 if failed else 0


def _run_build(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pipeline import gates

    options = build_options(argv)
    config = _build_config(options)
    if config.gates.baseline is not None:
        gates.load_baseline(config.gates.baseline)  # a bad baseline fails before TensorFlow

    from rich.console import Console

    from pipeline.build import build

    report = _run_with_progress(
        options.quiet, args.debug, lambda progress: build(config, progress=progress)
    )
    console = Console(stderr=options.json, width=max(Console().width, 120))  # intervals
    if options.json:
        print(json.dumps(report, indent=2))
    elif not options.quiet:
        from pipeline.report import print_summary

        print_summary(report, console)
        console.print(f"artifacts in {config.out}/ (report.md, manifest.json)")
    return _gate_failures(report["gates"])


def _run_init(args: argparse.Namespace) -> int:
    """`init`: writes a commented job file holding every option with its default."""
    from pipeline.errors import OutputError
    from pipeline.jobfile import template

    if args.path.exists() and not args.overwrite:
        raise OutputError(
            f"'{args.path}' exists. Pass --overwrite to replace it, or choose another path."
        )
    args.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.path.name}.", dir=args.path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(template(_build_defaults()))
    os.replace(tmp, args.path)
    print(f"wrote {args.path}; edit it, then run: bedside-lite build --config {args.path}")
    return 0


def _run_sweep(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`sweep`: the grid, its Pareto front and the confirmed recommendation."""
    from pipeline import jobfile, sweep

    job_file = jobfile.load(args.config) if args.config is not None else None
    passed = _explicit(argv, "sweep")
    grid_passed = {k[5:]: passed.pop(k) for k in list(passed) if k.startswith("grid_")}
    for name in (
        "sweep_out",
        "workers",
        "prefer",
        "ray",
        "point_cpus",
        "ray_retries",
        "config",
        "json",
        "quiet",
    ):
        passed.pop(name, None)
    options = jobfile.resolve(_build_defaults(), passed, job_file)
    base_job = jobfile.job_from_config(_build_config(options))
    file_sweep = job_file.sweep if job_file is not None else {}

    def axis(name: str) -> tuple[Any, ...]:
        values = grid_passed.get(name, file_sweep.get(name))
        return tuple(values) if values else ()

    grid = sweep.Grid(
        sparsity=axis("sparsity"),
        threshold=axis("threshold"),
        schedule=axis("schedule"),
        calibration_samples=axis("calibration_samples"),
        activations=axis("activations"),
    )
    sweep_options = sweep.SweepOptions(
        out=args.sweep_out or file_sweep.get("out") or Path("sweep"),
        workers=args.workers or file_sweep.get("workers") or 1,
        prefer=args.prefer or file_sweep.get("prefer") or "size",
        ray=args.ray or file_sweep.get("ray"),
        point_cpus=(
            args.point_cpus if args.point_cpus is not None else file_sweep.get("point_cpus", 1.0)
        ),
        ray_retries=(
            args.ray_retries if args.ray_retries is not None else file_sweep.get("ray_retries", 2)
        ),
    )
    summary = _run_with_progress(
        args.quiet,
        args.debug,
        lambda progress: sweep.run(base_job, grid, sweep_options, job_config, progress),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        _print_sweep(summary, sweep_options.out)
    rec = summary["recommended"]
    if summary["failed"]:
        print(
            f"failed: {len(summary['failed'])} of {len(summary['failed']) + len(summary['points'])}"
            " sweep points did not finish ("
            + "; ".join(f"{f['key']}: {f['error']}" for f in summary["failed"])
            + "); run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    if rec is None:
        print(
            "failed: no sweep point passes the gates on the validation split; see "
            f"{sweep_options.out / sweep.SWEEP_MD}",
            file=sys.stderr,
        )
        return 1
    return _gate_failures({"checks": rec["failed_gates"]})


def _print_sweep(summary: Mapping[str, Any], out: Path) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from pipeline import sweep

    table = Table(
        title="bedside-lite sweep (validation split)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    for column in ("point", "int8 KB", "AUROC", "sens", "spec", "p50 ms", "gates", ""):
        table.add_column(column, justify="left" if column == "point" else "right")
    rec = summary["recommended"]
    for d in summary["points"]:
        m, b = d["metrics"]["int8"], (d.get("bench") or {}).get("int8") or {}
        p50 = b.get("latency_ms", {}).get("p50")
        mark = ("recommended" if rec and rec["key"] == d["key"] else "") + (
            " pareto" if d["pareto"] else ""
        )
        table.add_row(
            sweep.label(d["params"]),
            f"{d['artifacts']['int8']['bytes'] / 1024:.1f}",
            "-" if m.get("auroc") is None else f"{m['auroc']:.4f}",
            "-" if m.get("sensitivity") is None else f"{m['sensitivity']:.3f}",
            "-" if m.get("specificity") is None else f"{m['specificity']:.3f}",
            "-" if p50 is None else f"{p50:.4f}",
            "pass" if d["gates"]["passed"] else "FAIL",
            mark.strip(),
        )
    console = Console(width=max(Console().width, 100))
    console.print(table)
    if rec is not None:
        auroc = rec["test"]["auroc"]
        console.print(
            f"recommended {rec['key']}: test AUROC "
            f"{'-' if auroc is None else format(auroc, '.4f')}, gates "
            f"{'passed' if rec['gates_passed'] else 'FAILED'}; build in {rec['out']}/"
        )
    console.print(f"sweep in {out}/ (sweep.md, sweep.json)")


def _run_export_onnx(args: argparse.Namespace) -> int:
    """`export-onnx`: writes the .onnx file(s) and onnx.json; exit 1 when parity fails."""
    from pipeline import artifacts
    from pipeline.errors import ModelError

    export_config = ExportConfig(onnx=True, opset=args.opset)
    if args.tflite is not None and not args.tflite.is_file():
        raise ModelError(
            f"--tflite '{args.tflite}' is not a file; expected the int8 .tflite "
            "written by `bedside-lite build` (model_int8.tflite)."
        )
    from converters import onnx_export

    onnx_export.require_extra()
    artifacts.check_output_dir(args.out, args.overwrite)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline import models
    from pipeline.quantization import postprocess_kind

    with _native_logs_captured(enabled=not args.debug):
        model = models.load_model(args.model)
        kind = models.output_kind(model)
        postprocess = "none"  # the build records in preprocessing.json if the host applies it
        if args.tflite is not None and (args.tflite.parent / "preprocessing.json").is_file():
            meta = json.loads((args.tflite.parent / "preprocessing.json").read_text())
            postprocess = meta.get("postprocess", "none")
        probes = onnx_export.probe_inputs(model, args.tflite)
        exported = onnx_export.export(
            model,
            args.tflite,
            probes,
            kind,
            postprocess_kind(postprocess, kind),
            opset=export_config.opset,
        )
        with artifacts.Staging(args.out) as stage:
            files = {
                "onnx_pruned_float32": stage.write_bytes(
                    onnx_export.FLOAT_FILENAME, exported.float_onnx
                )
            }
            if exported.int8_onnx is not None:
                files["onnx_int8"] = stage.write_bytes(
                    onnx_export.INT8_FILENAME, exported.int8_onnx
                )
            doc = {
                "model": str(args.model),
                "tflite": args.tflite and str(args.tflite),
                "parity_inputs": f"{len(probes)} seeded random samples",
                "artifacts": {k: artifacts.describe(p, args.out) for k, p in files.items()},
                "parity": exported.parity,
                "warnings": exported.warnings(),
            }
            (stage.dir / "onnx.json").write_text(json.dumps(doc, indent=2) + "\n")
            stage.commit()
    print(
        json.dumps(doc, indent=2)
        if args.json
        else f"wrote {', '.join(p.name for p in files.values())} to {args.out}/; parity "
        f"{'ok' if exported.ok else 'FAILED'}"
    )
    for warning in doc["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if exported.ok else 1


def _run_bench(args: argparse.Namespace) -> int:
    """The same subprocess interface the build's bench stage uses, here or on a device."""
    from pipeline.benchmark import run_device_bench, summarize
    from pipeline.errors import ConfigError, ModelError

    for model in args.models:
        if not model.is_file():
            raise ModelError(f"'{model}' is not a file; expected a .tflite model.")
    config = BenchConfig(
        runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds, threads=args.threads
    )
    devices = _device_config(args).devices
    if len(devices) > 1:
        raise ConfigError(
            f"bench measures one device at a time; received {len(devices)} --device. Run "
            "bench once per device, or use build, which measures every --device."
        )
    if devices and args.runtime_python is not None:
        raise ConfigError(
            "--runtime-python picks a Python on this machine, --device-python one on the "
            "device; received both with --device. Drop --runtime-python."
        )
    if args.json not in (None, "-"):
        folder = Path(args.json).parent
        if not folder.is_dir():
            raise ConfigError(
                f"--json '{args.json}': folder '{folder}' does not exist; create it first."
            )
    if devices:
        from pipeline.device.remote import bench_on_device

        doc = bench_on_device(devices[0], list(args.models), config)
    else:
        python = str(args.runtime_python) if args.runtime_python else None
        doc = run_device_bench(list(args.models), config, python)
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    else:
        if args.json is not None:
            fd, tmp = tempfile.mkstemp(prefix=f".{Path(args.json).name}.", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(doc, indent=2) + "\n")
            os.replace(tmp, args.json)
        where = f" on {devices[0].label}" if devices else ""
        for model, entry in zip(args.models, doc["models"], strict=True):
            s = summarize(entry)
            if s["status"] != "ok":
                print(f"{model}{where}: {s['status']}: {s['reason']}")
                continue
            lat, ratio = s["latency_ms"], s.get("ratio_to_float32") or {}
            print(
                f"{model}{where}: {s['runtime']} {s['runtime_version']} {s['threads']} "
                f"thread(s) p50 {lat['p50']:.4f} ms p99 {lat['p99']:.4f} ms peak RSS "
                f"{s['peak_rss_mb']:.1f} MB ratio to first {ratio.get('p50', 1.0):.2f}"
                + (f" ({s['note']})" if s.get("note") else "")
            )
    return 0 if all(m.get("status") == "ok" for m in doc["models"]) else 1


def _run_inspect(args: argparse.Namespace) -> int:
    from converters.inspection import inspect_tflite
    from pipeline.errors import ModelError

    if not args.file.is_file():
        raise ModelError(f"'{args.file}' is not a file; expected a .tflite model.")
    info = inspect_tflite(args.file)
    doc = info.to_json()
    from pipeline.manifest import read_embedded

    doc["manifest"] = read_embedded(args.file)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.file}: full_integer={doc['full_integer']}")
    print(f"  input  {doc['input']}")
    print(f"  output {doc['output']}")
    for op in doc["ops"]:
        print(
            f"  #{op['index']:<3} {op['op']:<24} v{op['version']:<2} "
            f"in={','.join(op['inputs'])} out={','.join(op['outputs'])}  {op['output_name']}"
        )
    if doc["float_tensors"]:
        print(f"  float tensors: {', '.join(doc['float_tensors'])}")
    if doc["manifest"] is not None:
        text = json.dumps(doc["manifest"], indent=2).replace("\n", "\n    ")
        print(f"  manifest (metadata 'bedside_lite_manifest'):\n    {text}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        if args.command == "build":
            return _run_build(args, argv)
        if args.command == "init":
            return _run_init(args)
        if args.command == "sweep":
            return _run_sweep(args, argv)
        if args.command == "export-onnx":
            return _run_export_onnx(args)
        if args.command == "bench":
            return _run_bench(args)
        return _run_inspect(args)
    except BedsideError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: no artifacts were written", file=sys.stderr)
        return 130


def run() -> None:
    """Console-script entry point."""
    raise SystemExit(main())
