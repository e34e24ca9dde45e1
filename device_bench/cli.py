"""Command line: ``python -m device_bench [bench] MODEL ...`` and ``... run MODEL``.

Exit codes: 0 success; 1 a model crashed, was refused, timed out or failed
(the other models are still reported); 2 bad input (missing file, not a
``.tflite``, unreadable input array, bad option), printed without traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device_bench import worker
from device_bench.compiled import ACCELERATORS, APIS, api_runtime
from device_bench.device_info import device_info
from device_bench.errors import DeviceBenchError, ModelRefusedError
from device_bench.inputs import load_input_file
from device_bench.isolate import add_profiles, bench_models
from device_bench.micro import DEFAULT_TIMING_RUNS, load_samples, micro_isolated, micro_report
from device_bench.model_file import check_model_path
from device_bench.profile import profile_main
from device_bench.runner import DEFAULT_BATCH_SIZE, run_model
from device_bench.runtime import ALL_RUNTIME_NAMES, RUNTIME_NAMES
from device_bench.settings import (
    DEFAULT_MIN_SECONDS,
    DEFAULT_RUNS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WARMUP,
    BenchSettings,
)
from device_bench.table import format_micro_table, format_table
from device_bench.tflm import TFLM
from device_bench.version import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A bad command line; the message says what to change."""


def _error(message: str) -> None:
    print(f"device_bench: error: {message}", file=sys.stderr)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, received {text}")
    return value


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runtime",
        choices=ALL_RUNTIME_NAMES,
        help="interpreter to use (default: the first installed of "
        + ", ".join(RUNTIME_NAMES)
        + "); 'tflm' runs TensorFlow Lite Micro (pip install tflite-micro) and reports "
        "arena_bytes, flash_bytes and the ops it lacks instead of latency",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=1, help="interpreter threads (default 1)"
    )
    parser.add_argument(
        "--no-xnnpack",
        dest="xnnpack",
        action="store_false",
        help="disable the runtime's default delegates (XNNPACK)",
    )
    parser.add_argument(
        "--api",
        choices=APIS,
        default="interpreter",
        help="LiteRT API: the Interpreter (default) or CompiledModel (compiled)",
    )
    parser.add_argument(
        "--accelerator",
        choices=ACCELERATORS,
        default="cpu",
        help="with --api compiled: cpu (default), gpu or npu; refused where the device has none",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m device_bench",
        description="Measure latency, init time and memory of .tflite models, each in its "
        "own process. Several models are compared interleaved (A B A B ...). "
        "Other commands: 'python -m device_bench run MODEL --input X.npy --output Y.npz' "
        "writes a model's outputs; 'python -m device_bench info' prints this device's "
        "machine, Python and runtime as JSON.",
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help=".tflite model(s)")
    parser.add_argument(
        "--runs", type=_positive_int, default=DEFAULT_RUNS, help="minimum timed runs (default 50)"
    )
    parser.add_argument(
        "--warmup", type=int, default=DEFAULT_WARMUP, help="warm-up runs (default 5)"
    )
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=DEFAULT_MIN_SECONDS,
        help="minimum time of the timed runs per model (default 1.0)",
    )
    parser.add_argument("--cpu", type=int, help="pin each measuring process to this core")
    parser.add_argument("--input", help=".npy/.npz input (default: seeded random input)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="time limit per model in seconds (default 300)",
    )
    parser.add_argument("--python", help="Python that runs the measurements (another venv)")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="measure several models one after another instead of interleaved",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also time each op alone (cut from the file) on the same runtime and delegate; "
        "adds models[i].profile to the JSON and the top ops to the table",
    )
    parser.add_argument("--json", metavar="PATH", help="write the JSON report ('-': stdout)")
    parser.add_argument("--version", action="version", version=f"device_bench {__version__}")
    _add_runtime_options(parser)
    return parser


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m device_bench run",
        description="Run a model on float32 samples (N, ...) and write its outputs: an .npz "
        "with 'outputs' (float32, dequantized) and 'raw_outputs' (the output tensor's dtype).",
    )
    parser.add_argument("model", metavar="MODEL", help=".tflite model")
    parser.add_argument("--input", required=True, help=".npy/.npz with samples (N, ...)")
    parser.add_argument("--output", required=True, help=".npz file to write")
    parser.add_argument("--status", metavar="PATH", help="also write the JSON status here")
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"samples per invoke for dynamic-batch models (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--no-fallback",
        dest="fallback",
        action="store_false",
        help="fail instead of retrying without default delegates when they refuse the model",
    )
    _add_runtime_options(parser)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    # argparse exits on --help and on errors; main() returns codes instead.
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT


def _check_output(path: str, overwrite: bool, suffix: str | None = None) -> Path:
    output = Path(path)
    if suffix and output.suffix.lower() != suffix:
        raise UsageError(
            f"Output '{output}' has suffix '{output.suffix}'; expected {suffix}. "
            f"Name the file '{output.with_suffix(suffix).name}'."
        )
    if not output.parent.is_dir():
        raise UsageError(f"Output folder '{output.parent}' does not exist; create it first.")
    if output.exists() and not overwrite:
        raise UsageError(f"Output '{output}' already exists; pass --overwrite to replace it.")
    return output


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    # A failed run never leaves a half-written file where a good one stood.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_json(path: Path, document: dict[str, Any]) -> None:
    def write(temporary: Path) -> None:
        temporary.write_text(json.dumps(document, indent=2) + "\n")

    _write_atomically(path, write)


def _bench_settings(args: argparse.Namespace) -> BenchSettings:
    for model in args.models:
        check_model_path(model)
    if args.input is not None:
        load_input_file(args.input)  # fail early on an unreadable file, for every model
    if args.python is not None and not (
        os.path.isfile(args.python) and os.access(args.python, os.X_OK)
    ):
        raise UsageError(
            f"--python '{args.python}' is not an executable file; expected the path of a "
            "Python interpreter, e.g. /opt/venv/bin/python."
        )
    if args.cpu is not None and args.python is None and hasattr(os, "sched_getaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        if args.cpu not in allowed:
            raise UsageError(
                f"--cpu {args.cpu} is not available to this process; expected one of {allowed}."
            )
    try:
        return BenchSettings(
            runs=args.runs,
            warmup=args.warmup,
            min_seconds=args.min_seconds,
            threads=args.threads,
            xnnpack=args.xnnpack,
            cpu=args.cpu,
            input_path=args.input,
            runtime=args.runtime,
            timeout_s=args.timeout,
            python=args.python,
            api=args.api,
            accelerator=args.accelerator,
        )
    except ValueError as error:
        raise UsageError(str(error)) from error


def _bench(argv: Sequence[str]) -> int:
    args = _parse(_bench_parser(), argv)
    if isinstance(args, int):
        return args
    if args.runtime == TFLM:
        return _micro_bench(args)
    try:
        settings = _bench_settings(args)
        json_path = None
        if args.json and args.json != "-":
            json_path = _check_output(args.json, args.overwrite)
    except (DeviceBenchError, UsageError) as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    compare = len(args.models) > 1 and not args.sequential
    how = "interleaved" if compare else "one at a time"
    print(f"device_bench: measuring {len(args.models)} model(s) {how}", file=sys.stderr)
    report = bench_models(args.models, settings, compare=compare)
    if args.profile:
        print("device_bench: profiling each op", file=sys.stderr)
        report = add_profiles(report)
    table = format_table(report)
    if args.json == "-":
        sys.stderr.write(table)
        print(json.dumps(report.to_json(), indent=2))
    else:
        sys.stdout.write(table)
    if json_path is not None:
        _write_json(json_path, report.to_json())
    return EXIT_OK if report.all_ok else EXIT_FAILED


def _save_outputs(path: Path, outputs: np.ndarray, raw_outputs: np.ndarray) -> None:
    with path.open("wb") as stream:
        np.savez(stream, outputs=outputs, raw_outputs=raw_outputs)


def _run(argv: Sequence[str]) -> int:
    args = _parse(_run_parser(), argv)
    if isinstance(args, int):
        return args
    status: dict[str, Any] = {"tool": "device_bench", "version": __version__, "model": args.model}
    try:
        status_path = _check_output(args.status, args.overwrite) if args.status else None
    except UsageError as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    code = EXIT_OK
    try:
        output = _check_output(args.output, args.overwrite, ".npz")
        inputs = load_input_file(args.input)
        result = run_model(
            args.model,
            inputs,
            runtime=api_runtime(args.runtime, args.api, args.accelerator),
            threads=args.threads,
            xnnpack=args.xnnpack,
            delegate_fallback=args.fallback,
            batch_size=args.batch_size,
        )
        _write_atomically(
            output, lambda tmp: _save_outputs(tmp, result.outputs, result.raw_outputs)
        )
        status.update(
            status="ok",
            reason=None,
            runtime=result.runtime,
            runtime_version=result.runtime_version,
            xnnpack=result.xnnpack,
            note=result.note,
            batched=result.batched,
            samples=int(result.outputs.shape[0]),
            input=result.input_quantization.to_json(),
            output=result.output_quantization.to_json(),
            output_shape=list(result.raw_outputs.shape),
            output_file=str(output),
        )
    except (DeviceBenchError, UsageError) as error:
        _error(str(error))
        # The model itself failing is a result (1); everything else is bad input (2).
        code = EXIT_FAILED if isinstance(error, ModelRefusedError) else EXIT_BAD_INPUT
        status.update(status="error", reason=str(error), error_type=type(error).__name__)
    if status_path is not None:
        _write_json(status_path, status)
    print(json.dumps(status, indent=2))
    return code


def _micro_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m device_bench micro",
        description="Run a model on TensorFlow Lite Micro in this process: its ops and the "
        "ones TFLM lacks, the smallest tensor arena that allocates and runs (searched), flash "
        "bytes, outputs, and host-side timing (not an MCU timing).",
    )
    parser.add_argument("model", metavar="MODEL", help=".tflite model")
    parser.add_argument("--input", help=".npy/.npz input (default: seeded random input)")
    parser.add_argument(
        "--runs",
        type=_positive_int,
        default=DEFAULT_TIMING_RUNS,
        help=f"timed invokes on this host (default {DEFAULT_TIMING_RUNS})",
    )
    parser.add_argument("--json", metavar="PATH", help="write the JSON report here")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return parser


def _micro(argv: Sequence[str]) -> int:
    args = _parse(_micro_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        json_path = _check_output(args.json, args.overwrite) if args.json else None
        report = micro_report(args.model, load_samples(args.input), runs=args.runs).to_json()
    except (DeviceBenchError, UsageError, ImportError) as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    if json_path is not None:
        _write_json(json_path, report)
    print(json.dumps(report, indent=2))
    return EXIT_OK if report["status"] == "ok" else EXIT_FAILED


def _micro_bench(args: argparse.Namespace) -> int:
    """``--runtime tflm``: each model's TFLM report, each in its own child process."""
    try:
        for model in args.models:
            check_model_path(model)
        if args.input is not None:
            load_input_file(args.input)
        json_path = (
            _check_output(args.json, args.overwrite) if args.json not in (None, "-") else None
        )
        reports = [
            micro_isolated(
                m, input_path=args.input, python=args.python, runs=args.runs, timeout_s=args.timeout
            )
            for m in args.models
        ]
    except (DeviceBenchError, UsageError) as error:
        _error(str(error))
        return EXIT_BAD_INPUT
    document = {"tool": "device_bench", "version": __version__, "runtime": TFLM, "models": reports}
    table = format_micro_table(reports)
    if args.json == "-":
        sys.stderr.write(table)
        print(json.dumps(document, indent=2))
    else:
        sys.stdout.write(table)
    if json_path is not None:
        _write_json(json_path, document)
    return EXIT_OK if all(r["status"] == "ok" for r in reports) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = arguments[0] if arguments else None
    if command == "run":
        return _run(arguments[1:])
    if command == "micro":
        return _micro(arguments[1:])
    if command == "_worker":
        return worker.main(arguments[1:])
    if command == "_profile":
        return profile_main(arguments[1:])
    if command == "info":
        print(json.dumps(device_info(), indent=2))
        return EXIT_OK
    if command == "bench":
        arguments = arguments[1:]
    return _bench(arguments)
