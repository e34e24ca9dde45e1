"""The measuring child process, started by ``isolate`` as ``python -m device_bench _worker``.

It speaks JSON lines with its parent: one request per line on stdin, one reply
per line on its protocol channel. Two modes:

``bench``: prepare one model (load, allocate, first invoke, warm-up), reply
``{"event": "ready", "setup": ...}``, then answer each ``{"cmd": "run", "runs":
N}`` (N <= ``CHUNK_CAPACITY``) with ``{"event": "ran", "durations_b64": ...,
"elapsed_ns": ..., "peak_rss_mb": ...}`` until stdin closes. Durations travel
as base64 of native int64s: compact, and no Python int per run in the child.

``check``: load the runtime, reply ``{"event": "ready"}``, then answer each
``{"cmd": "check", "path": P}`` with ``{"event": "checked", "status": ...}``
after loading, allocating and invoking the model once on random input.

Any failure the child can catch is a ``{"event": "failed", "status": ...,
"reason": ...}`` reply; a native crash simply ends the process, which the
parent sees as end-of-file plus a return code.
"""

from __future__ import annotations

import argparse
import base64
import faulthandler
import json
import os
import platform
import signal
import sys
import time
from typing import IO, Any

from device_bench.bench import duration_buffer, peak_rss_mb, prepare_model
from device_bench.runner import run_model
from device_bench.runtime import load_runtime
from device_bench.settings import BenchSettings
from device_bench.status import status_of

# Test hook: "<phase>:<SIGNAL>:<file name>" makes the child kill itself with
# SIGNAL (e.g. SIGSEGV, SIGABRT) when it reaches <phase> ("load", "run" or
# "check") for a model of that file name, simulating a native crash; "HANG"
# instead of a signal makes it sleep, simulating a kernel that never returns.
CRASH_ENV = "DEVICE_BENCH_INJECT_CRASH"
# Most timed invokes per request: bounds the duration buffer (32 KiB) and the
# transient base64 reply, which would otherwise show up in the model's peak RSS.
CHUNK_CAPACITY = 4096


def _maybe_crash(phase: str, model_path: str) -> None:
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return
    wanted_phase, signal_name, file_name = spec.split(":", 2)
    if wanted_phase == phase and os.path.basename(model_path) == file_name:
        sys.stderr.flush()
        if signal_name == "HANG":
            time.sleep(3600)
        os.kill(os.getpid(), getattr(signal, signal_name))


class _Channel:
    """The protocol channel: stdin for requests, a private copy of stdout for replies."""

    def __init__(self) -> None:
        sys.stdout.flush()
        # Replies get their own descriptor and fd 1 is pointed at stderr, so
        # that anything a runtime prints (from Python or native code) cannot
        # corrupt the protocol.
        self._out: IO[str] = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)

    def send(self, message: dict[str, Any]) -> None:
        self._out.write(json.dumps(message) + "\n")
        self._out.flush()

    def receive(self) -> dict[str, Any] | None:
        line = sys.stdin.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message


def _failure(error: BaseException) -> dict[str, Any]:
    return {
        "event": "failed",
        "status": status_of(error).value,
        "reason": str(error) or type(error).__name__,
        "error_type": type(error).__name__,
    }


def _serve_bench(channel: _Channel, model_path: str, settings: BenchSettings) -> None:
    # Allocated before the first memory reading, so it is not counted as the model's.
    buffer = duration_buffer(CHUNK_CAPACITY)
    _maybe_crash("load", model_path)
    try:
        prepared = prepare_model(model_path, settings)
    except Exception as error:  # every failure becomes a reply, never a traceback
        channel.send(_failure(error))
        return
    channel.send({"event": "ready", "setup": prepared.setup.to_json()})
    while (message := channel.receive()) is not None:
        _maybe_crash("run", model_path)
        count = min(int(message["runs"]), CHUNK_CAPACITY)
        try:
            elapsed_ns = prepared.time_into(buffer, count)
        except Exception as error:  # an invoke that raises ends this model's runs
            channel.send(_failure(error))
            return
        durations = base64.b64encode(memoryview(buffer)[:count].tobytes()).decode("ascii")
        channel.send(
            {
                "event": "ran",
                "durations_b64": durations,
                "elapsed_ns": elapsed_ns,
                "peak_rss_mb": peak_rss_mb(),
            }
        )


def _serve_check(channel: _Channel, settings: BenchSettings) -> None:
    try:
        runtime = load_runtime(settings.runtime)
    except Exception as error:  # a missing runtime fails every model alike
        channel.send(_failure(error))
        return
    channel.send({"event": "ready", "runtime": runtime.name, "version": runtime.version})
    while (message := channel.receive()) is not None:
        model_path = str(message["path"])
        _maybe_crash("check", model_path)
        try:
            result = run_model(
                model_path,
                None,
                runtime=runtime,
                threads=settings.threads,
                xnnpack=settings.xnnpack,
                seed=settings.seed,
            )
        except Exception as error:  # refused, unsupported, or a kernel error
            reply = _failure(error)
            # Whatever the device cannot run is refused, here: the check is
            # "does this model run", and the reason says why not.
            reply.update(event="checked", status="refused")
            channel.send(reply)
            continue
        channel.send(
            {
                "event": "checked",
                "status": "ok",
                "reason": None,
                "xnnpack": result.xnnpack,
                "note": result.note,
                "output_shape": list(result.raw_outputs.shape),
            }
        )


def main(argv: list[str]) -> int:
    """Runs the child side of the protocol.

    Args:
        argv: ``--mode bench|check --settings JSON [MODEL]``.

    Returns:
        Exit status (0 unless the protocol itself failed).
    """
    parser = argparse.ArgumentParser(prog="device_bench _worker")
    parser.add_argument("--mode", choices=("bench", "check"), required=True)
    parser.add_argument("--settings", required=True, help="BenchSettings fields as JSON")
    parser.add_argument("model", nargs="?")
    args = parser.parse_args(argv)
    # A native crash then leaves a Python stack on stderr for the parent's report.
    faulthandler.enable()
    settings = BenchSettings(**json.loads(args.settings))
    channel = _Channel()
    if settings.cpu is not None:
        try:
            os.sched_setaffinity(0, {settings.cpu})
        except (AttributeError, OSError, ValueError) as error:
            allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
            channel.send(
                {
                    "event": "failed",
                    "status": "error",
                    "reason": f"cannot pin to CPU {settings.cpu} on {platform.system()} "
                    f"({type(error).__name__}: {error}); pick a core from {allowed} "
                    "or drop --cpu.",
                    "error_type": type(error).__name__,
                }
            )
            return 0
    if args.mode == "bench":
        if not args.model:
            parser.error("bench mode needs a MODEL")
        _serve_bench(channel, args.model, settings)
    else:
        _serve_check(channel, settings)
    return 0
