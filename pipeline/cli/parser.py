"""The argparse parsers of every command and the value types of their flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import (
    AUTO_SPARSITY,
    AUTO_SPARSITY_GRID,
    FINETUNE_AUGMENTATIONS,
    LrSchedule,
    PruneSchedule,
    PruneScope,
    RuntimeTarget,
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
    from pipeline.config.jobfile import gate_assignment

    return gate_assignment(value)


def _release_arguments(p: argparse.ArgumentParser) -> None:
    """Options `build` and `sweep` share: job file, gates, output verbosity."""
    from pipeline.config.jobfile import GATE_KEYS

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
    parser = _Parser(
        prog="bedside-lite", description="Command line: `bedside-lite` (also `python -m pipeline`)."
    )
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


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]
