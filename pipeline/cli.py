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
from collections.abc import Iterator
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import BenchConfig, BuildConfig, DataConfig, PruneConfig, PruneScope, \
    QuantizeConfig
from pipeline.errors import BedsideError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise BedsideError(f"{self.prog}: {message}. See '{self.prog} --help'.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bedside-lite", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("build", help="prune, quantize to int8, verify, evaluate, bench, report")
    b.add_argument("--model", type=Path, help="Keras 3 model (.keras, .h5) or SavedModel dir; "
                   "default: train the embedded reference classifier")
    b.add_argument("--data", type=Path, help=".npz in MedMNIST layout or with x/y arrays")
    b.add_argument("--out", type=Path, default=Path("build"), help="output dir (default build/)")
    group = b.add_mutually_exclusive_group()
    group.add_argument("--sparsity", type=float, help="target sparsity S in [0, 1) (default 0.5)")
    group.add_argument("--threshold", type=float, help="absolute magnitude threshold tau >= 0")
    b.add_argument("--prune-scope", choices=[s.value for s in PruneScope], default="global")
    b.add_argument("--prune-biases", action="store_true", help="also prune biases with tau")
    b.add_argument("--finetune-epochs", type=int, default=0)
    b.add_argument("--calibration-samples", type=int, default=200)
    b.add_argument("--scale", type=float, help="input preprocessing: x * scale + offset")
    b.add_argument("--offset", type=float)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--bench-runs", type=int, default=100)
    b.add_argument("--threads", type=int, default=1, help="interpreter threads for the bench")
    b.add_argument("--no-bench", action="store_true", help="skip latency measurement")
    b.add_argument("--json", action="store_true", help="print report.json to stdout")
    b.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")

    i = sub.add_parser("inspect", help="ops, dtypes and quantization of a .tflite file")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true")
    return parser


def _build_config(args: argparse.Namespace) -> BuildConfig:
    if args.threshold is not None:
        prune = PruneConfig(target_sparsity=None, threshold=args.threshold,
                            scope=PruneScope(args.prune_scope), prune_biases=args.prune_biases,
                            finetune_epochs=args.finetune_epochs)
    else:
        prune = PruneConfig(target_sparsity=0.5 if args.sparsity is None else args.sparsity,
                            scope=PruneScope(args.prune_scope), prune_biases=args.prune_biases,
                            finetune_epochs=args.finetune_epochs)
    return BuildConfig(
        model=args.model,
        data=DataConfig(path=args.data, scale=args.scale, offset=args.offset, seed=args.seed),
        out=args.out,
        prune=prune,
        quantize=QuantizeConfig(calibration_samples=args.calibration_samples),
        bench=BenchConfig(runs=args.bench_runs, threads=args.threads, enabled=not args.no_bench),
        overwrite=args.overwrite,
        seed=args.seed,
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
        except BedsideError:
            failed = False
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                log.seek(0)
                tail = log.read().decode(errors="replace").splitlines()[-20:]
                print("\n".join(["native log (last lines):", *tail]), file=sys.stderr)


def _run_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.build import build

    config = _build_config(args)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _native_logs_captured(enabled=not args.debug) as real_stderr:
        progress_stream = os.fdopen(os.dup(real_stderr), "w")
        console = Console(file=progress_stream, stderr=True)
        try:
            with console.status("starting") as status:
                report = build(config, progress=lambda stage: status.update(f"{stage}..."))
        finally:
            progress_stream.close()
    console = Console(stderr=args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from pipeline.report import print_summary

        print_summary(report, console)
        console.print(f"artifacts in {config.out}/")
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from converters.inspection import inspect_tflite
    from pipeline.errors import ModelError

    if not args.file.is_file():
        raise ModelError(f"'{args.file}' is not a file; expected a .tflite model.")
    info = inspect_tflite(args.file)
    doc = info.to_json()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.file}: full_integer={doc['full_integer']}")
    print(f"  input  {doc['input']}")
    print(f"  output {doc['output']}")
    for op in doc["ops"]:
        print(f"  #{op['index']:<3} {op['op']:<24} v{op['version']:<2} "
              f"in={','.join(op['inputs'])} out={','.join(op['outputs'])}  {op['output_name']}")
    if doc["float_tensors"]:
        print(f"  float tensors: {', '.join(doc['float_tensors'])}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        if args.command == "build":
            return _run_build(args)
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
