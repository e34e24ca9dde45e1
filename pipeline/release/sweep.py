"""`bedside-lite sweep`: a grid over sparsity (or tau), pruning schedule, calibration size
and activation width.

Each point is pruned, fine-tuned, quantized (exactly its settings: no remedy ladder),
evaluated on the validation split and benchmarked; its variants are made by the build's own
code (`pipeline.release.variants`, with the operating point and every budget). Points run
in worker processes (`--workers N`, spawn; `pipeline.release.sweep_executor`), or as Ray
tasks on a cluster (`--ray ADDRESS`, see `pipeline.release.cluster`), and each finished
point is stored as `points/<key>.json`, the key a hash of everything that shapes its result
(the point's job and the library versions); a rerun skips finished points. The gates are
judged on validation metrics, the Pareto front is taken over (int8 size, int8 p50, int8
AUROC), and the recommended point (the smallest, or the fastest, that passes the gates) is
confirmed once on the test split by a full build into `confirm/<key>/`.

This module is the orchestration; the point logic (grid, keys, Pareto front,
recommendation) is `pipeline.release.sweep_points`, sweep.md `pipeline.release.sweep_markdown`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.config import BuildConfig, SweepOptions
from pipeline.errors import ConfigError, OutputError
from pipeline.release.report.schema import BuildReport, Gates
from pipeline.release.sweep_executor import run_local, write_json
from pipeline.release.sweep_markdown import write_markdown
from pipeline.release.sweep_points import Grid, pareto, point_job, point_key, recommend

POINTS_DIR = "points"
CONFIRM_DIR = "confirm"
SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
REFERENCE_PREFIX = "reference-"


def check_output_dir(out: Path) -> None:
    """A sweep dir is resumed, so it may exist, but only as a sweep dir."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"Sweep output '{out}' is a file; expected a directory.")
    if out.is_dir() and any(out.iterdir()) and not (out / POINTS_DIR).is_dir():
        raise OutputError(
            f"Sweep output '{out}' is a non-empty directory that holds no sweep "
            f"('{POINTS_DIR}/' missing). Choose a new or empty directory, or an earlier "
            "sweep's directory to resume it."
        )


def _reference_model(
    base: BuildConfig,
    job: Mapping[str, Mapping[str, Any]],
    out: Path,
    versions: Mapping[str, str],
    progress: Callable[[str], None],
) -> Path | None:
    """The embedded reference model, trained once per sweep and stored in the sweep dir."""
    if base.model is not None:
        return None
    key = point_key({s: job[s] for s in ("model", "data") if s in job}, versions)
    path = out / f"{REFERENCE_PREFIX}{key}.keras"
    if not path.is_file():
        from pipeline.clock import StageClock
        from pipeline.data.stage import load_stage

        progress("train reference model")
        loaded = load_stage(base, StageClock(lambda _: None))
        tmp = path.with_name(f".{path.name}.partial.keras")
        loaded.model.save(tmp)
        os.replace(tmp, path)
    return path


Todo = tuple[str, Mapping[str, Any], dict[str, dict[str, Any]], BuildConfig]


def run(
    base_job: Mapping[str, Mapping[str, Any]],
    grid: Grid,
    options: SweepOptions,
    configure: Callable[[Mapping[str, Mapping[str, Any]]], BuildConfig],
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Runs (or resumes) a sweep and writes sweep.json and sweep.md into `options.out`.

    Args:
        base_job: the resolved job every point starts from.
        grid: the values per axis.
        options: output dir, workers, preference.
        configure: turns a job document into a validated BuildConfig.
        progress: reports what is running.

    Raises:
        ConfigError: a point's settings are invalid (raised before any point runs).
    """
    from pipeline.release.manifest import versions as library_versions

    check_output_dir(options.out)
    address = None
    if options.ray is not None:
        from pipeline.release import cluster

        address = cluster.resolve_address(options.ray)  # and Ray installed: exit 2 early
    versions = library_versions()
    base = configure(base_job)
    if options.prefer == "latency" and not base.bench.enabled:
        raise ConfigError(
            "--prefer latency needs the bench; remove --no-bench "
            "([bench] enabled = false) or use --prefer size."
        )
    todo = _plan(base_job, grid, configure, versions)
    points_dir = options.out / POINTS_DIR
    points_dir.mkdir(parents=True, exist_ok=True)
    done = {
        key: json.loads((points_dir / f"{key}.json").read_text())
        for key, *_ in todo
        if (points_dir / f"{key}.json").is_file()
    }
    reference, failed = _run_pending(
        todo, done, base, base_job, options, address, versions, progress
    )
    points = [done[key] for key, *_ in todo if key in done]  # failed points: listed apart
    summary = _summary(points, base, grid, options, failed)
    best = recommend(points, options.prefer)
    if best is not None:
        summary["recommended"] = _confirm(best, todo, options, reference, progress)
    write_json(options.out / SWEEP_JSON, summary)
    write_markdown(summary, options.out / SWEEP_MD)
    return summary


def _plan(
    base_job: Mapping[str, Mapping[str, Any]],
    grid: Grid,
    configure: Callable[[Mapping[str, Mapping[str, Any]]], BuildConfig],
    versions: Mapping[str, str],
) -> list[Todo]:
    """Every point's key, parameters, job and validated config, before any point runs."""
    todo: list[Todo] = []
    for point in grid.points(base_job):
        job = point_job(base_job, point)
        try:
            config = configure(job)
        except ConfigError as exc:
            raise ConfigError(f"Sweep point {point}: {exc}") from None
        todo.append((point_key(job, versions), point, job, config))
    keys = [key for key, *_ in todo]
    if len(set(keys)) != len(keys):
        raise ConfigError("The sweep grid repeats a point; list each value once per axis.")
    return todo


def _run_pending(
    todo: list[Todo],
    done: dict[str, dict[str, Any]],
    base: BuildConfig,
    base_job: Mapping[str, Mapping[str, Any]],
    options: SweepOptions,
    address: str | None,
    versions: dict[str, str],
    progress: Callable[[str], None],
) -> tuple[Path | None, list[dict[str, Any]]]:
    """Runs the points not done yet (Ray, one process, or a pool); fills `done` as they
    finish. Returns the reference model used and the points that failed on Ray."""
    points_dir = options.out / POINTS_DIR
    reused = len(done)
    pending = [t for t in todo if t[0] not in done]

    def head(key: str, point: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
        return {"key": key, "params": dict(point), "job": job, "versions": versions}

    def finished(key: str, doc: dict[str, Any]) -> None:
        done[key] = doc
        progress(f"sweep: {len(done)}/{len(todo)} points done ({reused} reused)")

    progress(f"sweep: {len(done)}/{len(todo)} points done ({reused} reused)")
    if not pending:
        return None, []
    if address is not None:
        from pipeline.release import cluster

        def arrived(key: str, doc: dict[str, Any]) -> None:
            write_json(points_dir / f"{key}.json", doc)  # as it arrives: resumable
            finished(key, doc)

        with cluster.connect(address, progress):  # first: a dead address fails fast
            reference = _reference_model(base, base_job, options.out, versions, progress)
            jobs = [(key, config, head(key, point, job)) for key, point, job, config in pending]
            failed = cluster.run_points(
                jobs, reference, options.point_cpus, options.ray_retries, arrived, progress
            )
        return reference, failed
    reference = _reference_model(base, base_job, options.out, versions, progress)
    work = [
        (config, str(reference) if reference else None, str(points_dir / f"{key}.json"),
         head(key, point, job))
        for key, point, job, config in pending
    ]  # fmt: skip
    run_local(work, options.workers, finished)
    return reference, []


def _summary(
    points: list[dict[str, Any]],
    base: BuildConfig,
    grid: Grid,
    options: SweepOptions,
    failed: list[dict[str, Any]],
) -> dict[str, Any]:
    """sweep.json: every point judged by the gates on validation, and the Pareto front."""
    from pipeline.release import gates as gates_mod

    for doc in points:
        checks = gates_mod.evaluate_limits(
            doc, base.gates, None, bench_note="the sweep ran without the bench"
        )
        doc["gates"] = {
            "passed": all(c.passed for c in checks),
            "checks": [c.to_json() for c in checks],
        }
    front = set(pareto(points))
    for doc in points:
        doc["pareto"] = doc["key"] in front
    return {
        "grid": {k: list(v) for k, v in vars(grid).items() if v},
        "prefer": options.prefer,
        "split": "val",
        "points": [{k: v for k, v in d.items() if k != "job"} for d in points],
        "pareto": [d["key"] for d in points if d["pareto"]],
        "recommended": None,
        "failed": failed,
    }


def _confirm(
    best: Mapping[str, Any],
    todo: Sequence[tuple[Any, ...]],
    options: SweepOptions,
    reference: Path | None,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """A full build of the recommended point on the test split (reused when present)."""
    from pipeline.release.build import build

    key = best["key"]
    config = next(c for k, _, _, c in todo if k == key)
    out = options.out / CONFIRM_DIR / key
    report_path = out / "report.json"
    if report_path.is_file():
        report = BuildReport.from_json(json.loads(report_path.read_text()))
    else:
        if reference is None and config.model is None:
            reference = next(options.out.glob(f"{REFERENCE_PREFIX}*.keras"), None)
        config = replace(config, out=out, overwrite=True)
        report = build(
            config, progress=lambda stage: progress(f"confirm: {stage}"), reference=reference
        )
    test = report.metrics["int8"]
    gates = report.gates or Gates(passed=True, checks=[], baseline=None)
    return {
        "key": key,
        "params": best["params"],
        "out": str(out),
        "gates_passed": gates.passed,
        "failed_gates": [c.to_json() for c in gates.failed()],
        "test": {k: test.value(k) for k in ("auroc", "sensitivity", "specificity", "accuracy")},
        "int8_bytes": report.artifacts["int8"].bytes,
    }
