"""Command line: `bedside-lite` (also `python -m pipeline`).

`main(argv) -> int` parses, runs and maps errors to exit codes: 0 success, 1 a release gate
failed, 2 bad input (message, no traceback), 130 interrupted. Nothing heavy is imported
before the arguments are known to be valid.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.cli import export_c
from pipeline.cli.commands import run_bench, run_build, run_export_onnx, run_init, run_inspect
from pipeline.cli.parser import make_parser
from pipeline.cli.sweep import run_sweep
from pipeline.errors import BedsideError, ConverterError, DeprecatedOption


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    with warnings.catch_warnings():
        warnings.showwarning = _one_line(warnings.showwarning)
        return _main(argv, debug)


def _one_line(show: Callable[..., None]) -> Callable[..., None]:
    """`show`, except that a deprecated flag or job key is one `warning:` line."""

    def show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DeprecatedOption):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, *args, **kwargs)

    return show_warning


def _main(argv: list[str], debug: bool) -> int:
    try:
        args = make_parser().parse_args(argv)
        if args.command == "build":
            return run_build(args, argv)
        if args.command == "init":
            return run_init(args)
        if args.command == "sweep":
            return run_sweep(args, argv)
        if args.command == "export-onnx":
            return run_export_onnx(args)
        if args.command == "bench":
            return run_bench(args)
        if args.command == "export-c":
            return export_c.run(args)
        return run_inspect(args)
    except (BedsideError, ConverterError) as exc:
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
