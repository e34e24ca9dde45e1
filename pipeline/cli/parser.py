"""The argparse parsers of every command.

The options of `build` and `sweep` (and those `bench` and `export-onnx` share with them)
are generated from the option registry (`pipeline.config.options`); only the arguments
of the other commands are declared here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli import export_c
from pipeline.cli.arguments import add_options
from pipeline.config import BenchConfig
from pipeline.errors import BedsideError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise BedsideError(f"{self.prog}: {message}. See '{self.prog} --help'.")


def _export_onnx(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    e = sub.add_parser(
        "export-onnx",
        help="Keras model (and int8 .tflite) to ONNX, with a "
        "parity check on seeded inputs (needs bedside-lite[onnx])",
    )
    e.add_argument("--model", type=Path, required=True, help="the (pruned) Keras model")
    e.add_argument("--tflite", type=Path, help="its int8 .tflite: also write model_int8.onnx")
    e.add_argument("--out", type=Path, required=True, help="output dir")
    add_options(e, "export-onnx")
    e.add_argument("--json", action="store_true", help="print onnx.json to stdout")


def _bench(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    d.add_argument("--runs", type=int, default=BenchConfig.runs)
    d.add_argument("--warmup", type=int, default=BenchConfig.warmup)
    d.add_argument("--min-seconds", type=float, default=BenchConfig.min_seconds)
    d.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write device_bench's JSON report to FILE (default: print it)",
    )
    add_options(d, "bench")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bedside-lite", description="Command line: `bedside-lite` (also `python -m pipeline`)."
    )
    add_options(parser, "main")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    b = sub.add_parser("build", help="prune, quantize to int8, verify, evaluate, bench, report")
    add_options(b, "build")
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
    add_options(w, "sweep")
    _export_onnx(sub)
    _bench(sub)
    export_c.add_parser(sub)
    i = sub.add_parser("inspect", help="ops, dtypes and quantization of a .tflite file")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true")
    i.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUNTIME_A", "RUNTIME_B"),
        help="run the file on both runtimes (litert, litert-no-delegates) with every op's "
        "output exposed and print each op's error along the graph (max steps, SNR)",
    )
    i.add_argument(
        "--data",
        type=Path,
        help="with --compare: .npy/.npz samples (N, ...) in the model's input units",
    )
    i.add_argument(
        "--samples", type=int, default=32, help="with --compare: samples to run (default 32)"
    )
    return parser


def subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]
