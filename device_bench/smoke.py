"""Smoke-tests many models in one crash-proof child: does each load and run at all."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from device_bench.child import Child
from device_bench.isolate import settings_arg
from device_bench.report import Status
from device_bench.settings import BenchSettings

DEFAULT_CHECK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CheckResult:
    """Outcome of loading, allocating and invoking a model once.

    Attributes:
        path: Model path.
        status: ``ok`` (ran), ``refused`` (the interpreter or device_bench
            rejected it), ``crashed``, ``timeout`` or ``error`` (no runtime).
        reason: Why it is not ``ok``.
        exit_status: Child return code for ``crashed``.
        signal: Signal name for ``crashed`` by a signal.
        note: Delegate fallback note, if any.
    """

    path: str
    status: Status
    reason: str | None = None
    exit_status: int | None = None
    signal: str | None = None
    note: str | None = None


def check_models(
    paths: Sequence[str | os.PathLike[str]],
    settings: BenchSettings | None = None,
    *,
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
) -> list[CheckResult]:
    """Smoke-tests models in one child process that is restarted after a crash.

    Each model is loaded, allocated and invoked once on seeded random input.
    A model that kills the child is ``crashed`` and the next model gets a fresh
    child, so one bad file never hides the verdict on the others.

    Args:
        paths: ``.tflite`` models.
        settings: Runtime, threads, xnnpack, cpu and python to use (runs and
            timing fields are ignored).
        timeout_s: Time limit per model.

    Returns:
        One result per path, in order.
    """
    settings = settings or BenchSettings()
    args = ["--mode", "check", "--settings", settings_arg(settings)]
    models = [str(path) for path in paths]
    results: list[CheckResult] = []
    child: Child | None = None

    def fail_the_rest(reason: str) -> list[CheckResult]:
        # A child that cannot start at all (e.g. no runtime) would fail every
        # remaining model the same way.
        results.extend(CheckResult(p, Status.ERROR, reason) for p in models[len(results) :])
        return results

    try:
        for path in models:
            if child is None:
                try:
                    child = Child(settings.python_executable, args, timeout_s)
                except OSError as error:
                    return fail_the_rest(
                        f"cannot start Python '{settings.python_executable}': {error}"
                    )
                reply = child.receive()
                if reply is None or reply["event"] != "ready":
                    reason = (
                        child.failure("starting", timeout_s).reason
                        if reply is None
                        else reply["reason"]
                    )
                    child.close()
                    child = None
                    return fail_the_rest(reason)
            child.budget_s = timeout_s
            reply = child.receive() if child.send({"cmd": "check", "path": path}) else None
            if reply is None:
                failure = child.failure("checking the model", timeout_s)
                results.append(
                    CheckResult(
                        path, failure.status, failure.reason, failure.exit_status, failure.signal
                    )
                )
                child.close()
                child = None
                continue
            results.append(
                CheckResult(path, Status(reply["status"]), reply["reason"], note=reply.get("note"))
            )
    finally:
        if child is not None:
            child.close()
    return results
