"""`bedside-lite sweep`: a grid over sparsity (or tau), pruning schedule, calibration size
and activation width.

Each point is pruned, fine-tuned, quantized (exactly its settings: no remedy ladder),
evaluated on the validation split and benchmarked, using the build's own stages. Points
run in worker processes (`--workers N`, spawn), or as Ray tasks on a cluster (`--ray
ADDRESS`, see `pipeline.release.cluster`), and each finished point is stored as
`points/<key>.json`, the key a hash of everything that shapes its result (the point's job
and the library versions); a rerun skips finished points. The gates are judged on
validation metrics, the Pareto front is taken over (int8 size, int8 p50, int8 AUROC), and
the recommended point (the smallest, or the fastest, that passes the gates) is confirmed
once on the test split by a full build into `confirm/<key>/`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.config import BuildConfig, PruneConfig, QuantizeConfig, SweepOptions, Variant
from pipeline.errors import ConfigError, OutputError
from pipeline.release.report.schema import BuildReport, Gates, VariantMetrics, read_bench

POINTS_DIR = "points"
CONFIRM_DIR = "confirm"
SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
REFERENCE_PREFIX = "reference-"
# Sections of a point's job that do not change its measured result
_UNKEYED_SECTIONS = ("export", "gates")
# What a point keeps of the pruning and quantization blocks
_POINT_PRUNING = (
    "threshold",
    "target_sparsity",
    "achieved_sparsity",
    "schedule",
    "finetune_epochs",
)
_POINT_QUANTIZATION = ("recipe", "activations", "calibration_samples", "full_integer")


@dataclass(frozen=True)
class Grid:
    """Values per axis; an axis left out keeps the base job's single value."""

    sparsity: tuple[float | str, ...] = ()
    threshold: tuple[float, ...] = ()
    schedule: tuple[str, ...] = ()
    calibration_samples: tuple[int, ...] = ()
    activations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sparsity and self.threshold:
            raise ConfigError(
                "A sweep varies either the sparsity or the threshold tau; received both "
                f"(sparsity {list(self.sparsity)}, threshold {list(self.threshold)}). "
                "Keep one of them."
            )

    def points(self, base: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every combination, as the job keys it sets ([prune] and [quantize])."""
        prune, quantize = base.get("prune", {}), base.get("quantize", {})
        if self.threshold:
            amount: list[tuple[str, Any]] = [("threshold", t) for t in self.threshold]
        elif self.sparsity:
            amount = [("sparsity", s) for s in self.sparsity]
        elif "threshold" in prune:
            amount = [("threshold", prune["threshold"])]
        else:
            amount = [("sparsity", prune.get("sparsity", "auto"))]
        axes = (
            amount,
            self.schedule or [prune.get("schedule", PruneConfig.schedule.value)],
            self.calibration_samples
            or [quantize.get("calibration_samples", QuantizeConfig.calibration_samples)],
            self.activations or [quantize.get("activations", QuantizeConfig.activations)],
        )
        return [
            {a[0]: a[1], "schedule": s, "calibration_samples": c, "activations": w}
            for a, s, c, w in itertools.product(*axes)
        ]


def point_job(
    base: Mapping[str, Mapping[str, Any]], point: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The base job with a point's settings; the remedy ladder is off so that the point
    measures exactly what it names."""
    job = {section: dict(table) for section, table in base.items()}
    prune = job.setdefault("prune", {})
    quantize = job.setdefault("quantize", {})
    prune.pop("sparsity", None)
    prune.pop("threshold", None)
    for name in ("sparsity", "threshold"):
        if name in point:
            prune[name] = point[name]
    prune["schedule"] = point["schedule"]
    quantize["calibration_samples"] = point["calibration_samples"]
    quantize["activations"] = point["activations"]
    quantize["remedy"] = False
    return job


def point_key(job: Mapping[str, Mapping[str, Any]], versions: Mapping[str, str]) -> str:
    """Hash of what shapes a point's result: its job (not output or gates) and versions."""
    keyed = {s: t for s, t in job.items() if s not in _UNKEYED_SECTIONS}
    text = json.dumps({"job": keyed, "versions": dict(versions)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write_json(path: Path, doc: Any) -> None:
    """Temporary file + rename: an interrupted sweep never leaves a half-written point."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it private; results are not
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def label(params: Mapping[str, Any]) -> str:
    """A point's settings in a few words: `sparsity=0.5 oneshot cal=200 int8`."""
    amount = "threshold" if "threshold" in params else "sparsity"
    return (
        f"{amount}={params[amount]} {params['schedule']} "
        f"cal={params['calibration_samples']} {params['activations']}"
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def evaluate_point(
    config: BuildConfig,
    reference: Path | None,
    provenance: tuple[BuildConfig, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Prunes, fine-tunes, quantizes, evaluates on the validation split and benches one
    point, through the build's stages. Heavy: imports TensorFlow.

    Args:
        config: the point's build (its files readable here).
        reference: the saved embedded reference model, if any.
        provenance: (the config as the user wrote it, its input hashes) to embed instead
            of `config`'s: a Ray worker reads copies of the files under other paths, and
            the bytes must not depend on where they ran.
    """
    from converters import tflite
    from pipeline.clock import StageClock
    from pipeline.config import jobfile
    from pipeline.data.stage import load_stage
    from pipeline.device.stage import bench_stage
    from pipeline.evaluate.stage import evaluate_variants
    from pipeline.evaluate.subgroups import point_worst_group
    from pipeline.prune.stage import prune_stage
    from pipeline.quantize import ptq as quantization
    from pipeline.release import artifacts, manifest

    clock = StageClock(lambda _: None)
    loaded = load_stage(config, clock, reference)
    model, splits, kind = loaded.model, loaded.splits, loaded.kind
    with tempfile.TemporaryDirectory(prefix="bedside-sweep-") as tmp:
        paths = {Variant.FLOAT32: Path(tmp) / Variant.FLOAT32.filename}
        paths[Variant.FLOAT32].write_bytes(tflite.to_float32(model))
        pruned = prune_stage(model, splits, kind, config, clock)
        paths[Variant.PRUNED_FLOAT32] = Path(tmp) / Variant.PRUNED_FLOAT32.filename
        paths[Variant.PRUNED_FLOAT32].write_bytes(tflite.to_float32(pruned.model))
        quant = clock.run(
            "quantize int8",
            lambda: quantization.quantize(
                pruned.model, splits, config.quantize, kind, pruned.val_auroc, config.seed
            ),
        )
        paths[Variant.INT8] = Path(tmp) / Variant.INT8.filename
        paths[Variant.INT8].write_bytes(quant.tflite)
        # the same provenance as a build, so a point's files are byte for byte what the
        # confirming build ships (the embedded manifest holds no output path)
        shown, inputs = provenance or (config, manifest.input_files(config))
        job = jobfile.job_from_config(shown)
        embedded = manifest.embedded_manifest(shown, job, inputs)
        manifest.embed_files(paths, embedded, splits.model_inputs("val")[:32])
        metrics = clock.run(
            "evaluate",
            lambda: evaluate_variants(paths, splits, "val", kind, quant.output_kind, config),
        )
        bench = bench_stage(paths, config, clock)
        sizes = {
            v.value: {"bytes": p.stat().st_size, "sha256": artifacts.sha256(p)}
            for v, p in paths.items()
        }
    p, q = pruned.report, quant.report
    return {
        "split": "val",
        "artifacts": sizes,
        "metrics": metrics,
        "bench": bench,
        "pruning": {k: p.get(k) for k in _POINT_PRUNING},
        "quantization": {k: q.get(k) for k in _POINT_QUANTIZATION},
        "timings_s": clock.seconds,
        **point_worst_group(metrics, splits, "val", config.evaluation.min_subgroup_cases),
    }


def _worker(
    config: BuildConfig, reference: str | None, path: str, head: dict[str, Any]
) -> dict[str, Any]:
    """Runs one point and stores it (in a spawned process, or in-process with 1 worker)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    result = evaluate_point(config, Path(reference) if reference else None)
    doc = {**head, **result, **where_ran(None, time.perf_counter() - start)}
    _write_json(Path(path), doc)
    return doc


def where_ran(node_id: str | None, seconds: float) -> dict[str, Any]:
    """A point's `node` (Ray node id, None in the local pool, and hostname) and `wall_s`."""
    return {"node": {"id": node_id, "hostname": socket.gethostname()}, "wall_s": seconds}


def int8_metrics(doc: Mapping[str, Any]) -> VariantMetrics:
    """A point's int8 metrics (validation split), typed."""
    return VariantMetrics.from_json(doc["metrics"]["int8"], strict=False)


def int8_p50(doc: Mapping[str, Any]) -> float | None:
    """A point's int8 p50 latency (ms); None without a bench that measured it."""
    entry = (doc.get("bench") or {}).get("int8")
    b = read_bench({"int8": entry}, strict=False)["int8"] if entry else None
    return b.latency_ms.get("p50") if b is not None and b.ok else None


def int8_value(doc: Mapping[str, Any], what: str) -> Any:
    """A point's int8 `bytes`, `p50` or validation metric `what` (None where unmeasured)."""
    if what == "bytes":
        return doc["artifacts"]["int8"]["bytes"]
    if what == "p50":
        return int8_p50(doc)
    return int8_metrics(doc).value(what)


def pareto(points: Sequence[Mapping[str, Any]]) -> list[str]:
    """Keys of the points no other point beats on int8 size, p50 (when measured) and AUROC."""

    def objectives(doc: Mapping[str, Any]) -> tuple[float, ...] | None:
        auroc = int8_value(doc, "auroc")
        if auroc is None:
            return None
        p50 = int8_value(doc, "p50")
        return (float(int8_value(doc, "bytes")), p50 if p50 is not None else 0.0, -auroc)

    scored: list[tuple[str, tuple[float, ...]]] = []
    for doc in points:
        values = objectives(doc)
        if values is not None:
            scored.append((doc["key"], values))
    front = []
    for key, mine in scored:
        dominated = any(
            all(a <= b for a, b in zip(other, mine, strict=True)) and other != mine
            for k, other in scored
            if k != key
        )
        if not dominated:
            front.append(key)
    return front


def recommend(points: Sequence[Mapping[str, Any]], prefer: str) -> Mapping[str, Any] | None:
    """The smallest (or fastest) point that passes every gate; ties go to higher AUROC."""
    passing = [d for d in points if d["gates"]["passed"] and int8_value(d, "auroc") is not None]
    if prefer == "latency":
        passing = [d for d in passing if int8_value(d, "p50") is not None]

        def order(d: Mapping[str, Any]) -> tuple[float, ...]:
            return (int8_value(d, "p50"), int8_value(d, "bytes"), -int8_value(d, "auroc"))
    else:

        def order(d: Mapping[str, Any]) -> tuple[float, ...]:
            p50 = int8_value(d, "p50")
            return (
                int8_value(d, "bytes"),
                -int8_value(d, "auroc"),
                p50 if p50 is not None else 0.0,
            )

    return min(passing, key=order) if passing else None


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
    _write_json(options.out / SWEEP_JSON, summary)
    from pipeline.release.sweep_markdown import write_markdown

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
            _write_json(points_dir / f"{key}.json", doc)  # as it arrives: resumable
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
    if options.workers == 1:
        for (key, *_), args in zip(pending, work, strict=True):
            finished(key, _worker(*args))
        return reference, []
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(options.workers, mp_context=context) as pool:
        futures = {pool.submit(_worker, *args): t[0] for t, args in zip(pending, work, strict=True)}
        for future in concurrent.futures.as_completed(futures):
            finished(futures[future], future.result())
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
