"""Benchmarks models in child processes, one process per model.

Each model's memory is then its own, and a native crash, a refused delegate or
a hang in one model is reported instead of ending the run.

``bench_models`` is the benchmark entry point for the pipeline. With several
models it interleaves them (compare mode): each model gets a long-lived child,
and the parent runs short rounds A, B, A, B, ... so that drift of the machine
(thermal throttling, other load) hits every model alike.
"""

from __future__ import annotations

import array
import base64
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from device_bench.bench import Setup
from device_bench.child import Child, ChildFailure
from device_bench.profile import profile_isolated
from device_bench.report import BenchReport, ModelReport, Status, with_ratios
from device_bench.settings import BenchSettings
from device_bench.worker import CHUNK_CAPACITY

# Compare mode aims at this many rounds per model: enough alternations to
# spread drift evenly, few enough that protocol overhead stays negligible.
COMPARE_ROUNDS = 20


def settings_arg(settings: BenchSettings) -> str:
    """Encodes settings for a worker's ``--settings`` argument."""
    return json.dumps(dataclasses.asdict(settings))


def _start_bench_child(path: str, settings: BenchSettings) -> Child:
    args = ["--mode", "bench", "--settings", settings_arg(settings), path]
    return Child(settings.python_executable, args, settings.timeout_s)


def _failed_report(path: str, settings: BenchSettings, **fields: Any) -> ModelReport:
    file_bytes = None
    try:
        file_bytes = Path(path).stat().st_size
    except OSError:
        pass
    return ModelReport(
        path=path,
        runtime=settings.runtime,
        threads=settings.threads,
        xnnpack=settings.xnnpack,
        file_bytes=file_bytes,
        **fields,
    )


def _from_failure(
    path: str, settings: BenchSettings, failure: ChildFailure, setup: Setup | None
) -> ModelReport:
    if setup is None:
        base = _failed_report(path, settings, status=failure.status)
    else:
        base = setup.partial_report(path, failure.status, failure.reason)
    return replace(
        base,
        reason=failure.reason,
        exit_status=failure.exit_status,
        signal=failure.signal,
        stderr_tail=failure.stderr_tail,
    )


def _from_failed_reply(
    path: str, settings: BenchSettings, reply: dict[str, Any], setup: Setup | None
) -> ModelReport:
    status = Status(reply["status"])
    if setup is None:
        return _failed_report(path, settings, status=status, reason=reply["reason"])
    return setup.partial_report(path, status, reply["reason"])


@dataclass
class _Contestant:
    """A model being measured, its child, and what it has measured so far."""

    index: int
    path: str
    child: Child
    setup: Setup
    chunk: int
    durations: array.array[int] = dataclasses.field(default_factory=lambda: array.array("q"))
    elapsed_ns: int = 0
    peak_rss_mb: float | None = None

    def done(self, settings: BenchSettings) -> bool:
        enough_runs = len(self.durations) >= settings.runs
        return enough_runs and self.elapsed_ns >= settings.min_seconds * 1e9

    def next_chunk(self, settings: BenchSettings) -> int:
        """Invokes to ask for next: the round size, or just what is still missing."""
        missing_runs = settings.runs - len(self.durations)
        missing_ns = settings.min_seconds * 1e9 - self.elapsed_ns
        mean_ns = self.elapsed_ns / len(self.durations) if self.durations else 0.0
        missing_by_time = math.ceil(missing_ns / mean_ns) if mean_ns > 0 else 1
        return max(1, min(self.chunk, max(missing_runs, missing_by_time, 1), CHUNK_CAPACITY))


def _chunk_size(settings: BenchSettings, setup: Setup, rounds: int) -> int:
    per_round_ms = settings.min_seconds * 1e3 / rounds
    by_time = math.ceil(per_round_ms / max(setup.warmup_mean_ms, 1e-6))
    return max(1, min(CHUNK_CAPACITY, max(math.ceil(settings.runs / rounds), by_time)))


def _start(path: str, settings: BenchSettings) -> tuple[Child, Setup] | ModelReport:
    """Starts a bench child and waits until it is ready; a report if it failed."""
    try:
        child = _start_bench_child(path, settings)
    except OSError as error:
        return _failed_report(
            path,
            settings,
            status=Status.ERROR,
            reason=f"cannot start Python '{settings.python_executable}': {error}",
        )
    reply = child.receive()
    if reply is None:
        failure = child.failure("loading the model", settings.timeout_s)
        child.close()
        return _from_failure(path, settings, failure, None)
    if reply["event"] != "ready":
        child.close()
        return _from_failed_reply(path, settings, reply, None)
    return child, Setup.from_json(reply["setup"])


def _run_to_completion(
    contestants: list[_Contestant], settings: BenchSettings, reports: dict[int, ModelReport]
) -> None:
    """Runs rounds over the contestants until each is done or failed, then closes them."""
    live = list(contestants)
    while running := [c for c in live if not c.done(settings)]:
        for contestant in running:
            child = contestant.child
            sent = child.send({"cmd": "run", "runs": contestant.next_chunk(settings)})
            reply = child.receive() if sent else None
            if reply is not None and reply["event"] == "ran":
                contestant.durations.frombytes(base64.b64decode(reply["durations_b64"]))
                contestant.elapsed_ns += int(reply["elapsed_ns"])
                contestant.peak_rss_mb = reply["peak_rss_mb"]
                continue
            if reply is None:
                failure = child.failure("running", settings.timeout_s)
                report = _from_failure(contestant.path, settings, failure, contestant.setup)
            else:
                report = _from_failed_reply(contestant.path, settings, reply, contestant.setup)
            reports[contestant.index] = report
            live.remove(contestant)
    for contestant in contestants:
        contestant.child.close()
        if contestant.index not in reports:
            reports[contestant.index] = contestant.setup.report(
                contestant.path, contestant.durations, contestant.peak_rss_mb
            )


def _measure(paths: Sequence[str], settings: BenchSettings, rounds: int) -> list[ModelReport]:
    """Measures models in rounds of timed invokes, alternating between children.

    Children are started (and their models prepared) one after another, so no
    load disturbs another model's init. Then every round asks each unfinished
    model for about ``1/rounds`` of its quota (runs and ``min_seconds``).

    Args:
        paths: Model paths.
        settings: Measurement settings.
        rounds: Rounds to aim for. With 1, each model is measured to completion
            (in as few requests as the child's buffer allows) and its child
            ends before the next one starts.

    Returns:
        One report per path, in order.
    """
    reports: dict[int, ModelReport] = {}
    contestants: list[_Contestant] = []
    try:
        for index, path in enumerate(paths):
            started = _start(path, settings)
            if isinstance(started, ModelReport):
                reports[index] = started
                continue
            child, setup = started
            contestants.append(
                _Contestant(index, path, child, setup, _chunk_size(settings, setup, rounds))
            )
            if rounds == 1:
                _run_to_completion([contestants.pop()], settings, reports)
        _run_to_completion(contestants, settings, reports)
    finally:
        for contestant in contestants:
            contestant.child.close()
    return [reports[index] for index in range(len(paths))]


def measure_isolated(path: str | os.PathLike[str], settings: BenchSettings) -> ModelReport:
    """Measures one model in a fresh child process.

    Args:
        path: Path of a ``.tflite`` model.
        settings: Measurement settings (``python`` picks the child's interpreter,
            ``timeout_s`` bounds the total time spent waiting on the child).

    Returns:
        The model's report; never raises for a model that fails, crashes or
        hangs: its status says so.
    """
    return _measure([str(path)], settings, rounds=1)[0]


def bench_models(
    paths: Sequence[str | os.PathLike[str]],
    settings: BenchSettings,
    *,
    compare: bool | None = None,
) -> BenchReport:
    """Benchmarks models, each in its own child process.

    Args:
        paths: ``.tflite`` models; with ``compare`` the first is the reference.
        settings: Measurement settings.
        compare: Interleave the models' runs (rounds A, B, A, B, ...) and add
            ratios to the first model; defaults to ``True`` for several models.
            Otherwise each model is measured to completion in turn.

    Returns:
        The report. A model that fails, crashes or hangs gets that status; the
        others are measured regardless.
    """
    models = [str(path) for path in paths]
    if compare is None:
        compare = len(models) > 1
    if compare:
        reports = with_ratios(_measure(models, settings, rounds=COMPARE_ROUNDS))
    else:
        reports = _measure(models, settings, rounds=1)
    return BenchReport(settings=settings, compare=compare, models=tuple(reports))


def add_profiles(report: BenchReport) -> BenchReport:
    """Adds a per-op profile to each measured model, each profiled in its own child.

    A model whose profiling fails keeps its measurement; its note says why.

    Args:
        report: A benchmark report.

    Returns:
        The report with ``profile`` filled in for the models that were measured.
    """
    models = []
    for model in report.models:
        if not model.ok:
            models.append(model)
            continue
        profile = profile_isolated(model.path, report.settings)
        if isinstance(profile, str):
            note = f"{model.note}; {profile}" if model.note else profile
            models.append(replace(model, note=note))
        else:
            models.append(replace(model, profile=profile))
    return replace(report, models=tuple(models))
