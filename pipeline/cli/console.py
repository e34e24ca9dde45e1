"""Running a command with a progress line, native logs captured, and gate failures printed."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pipeline.errors import BedsideError, ConverterError


@contextlib.contextmanager
def native_logs_captured(enabled: bool) -> Iterator[int]:
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
        except (BedsideError, ConverterError, KeyboardInterrupt):
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


def run_with_progress(
    quiet: bool, debug: bool, work: Callable[[Callable[[str], None]], Any]
) -> Any:
    """Runs `work(progress)` with a rich status line (none when quiet), native logs captured."""
    from rich.console import Console

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_logs_captured(enabled=not debug) as real_stderr:
        progress_stream = os.fdopen(os.dup(real_stderr), "w")
        console = Console(file=progress_stream, stderr=True, quiet=quiet)
        try:
            with console.status("starting") as status:
                return work(lambda stage: status.update(f"{stage}..."))
        finally:
            progress_stream.close()


def gate_failures(gates: Mapping[str, Any]) -> int:
    """Prints each failed gate with its measured value and limit; 1 if any failed."""
    from pipeline.release.gates import failure_message

    failed = [c for c in gates.get("checks", []) if not c["passed"]]
    for check in failed:
        print(f"failed: {failure_message(check)}", file=sys.stderr)
    return 1 if failed else 0
