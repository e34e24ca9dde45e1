"""Running sweep points: one point (`evaluate_point`) and the local executor (in this
process, or a pool of spawned worker processes). The Ray executor is
`pipeline.release.cluster`, which runs the same `evaluate_point` on a cluster's workers.

A point makes its variants through the build's own code (`pipeline.release.variants`), with
the operating point and every budget, then evaluates them on the validation split and
benches them; each finished point is stored as a JSON file (temporary file + rename).
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import socket
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import BuildConfig

# What a point keeps of the pruning and quantization blocks
_POINT_PRUNING = (
    "threshold",
    "target_sparsity",
    "achieved_sparsity",
    "schedule",
    "finetune_epochs",
)
_POINT_QUANTIZATION = ("recipe", "activations", "calibration_samples", "full_integer")

# (config, reference model path, the point's JSON path, its head: key, params, job, versions)
LocalWork = tuple[BuildConfig, str | None, str, dict[str, Any]]


def write_json(path: Path, doc: Any) -> None:
    """Temporary file + rename: an interrupted sweep never leaves a half-written point."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it private; results are not
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(doc, indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


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
    """Makes one point's variants as a build does (`make_variants`), evaluates them on the
    validation split and benches them. Heavy: imports TensorFlow.

    Args:
        config: the point's build (its files readable here).
        reference: the saved embedded reference model, if any.
        provenance: (the config as the user wrote it, its input hashes) to embed instead
            of `config`'s: a Ray worker reads copies of the files under other paths, and
            the bytes must not depend on where they ran.
    """
    from pipeline.clock import StageClock
    from pipeline.config import jobfile
    from pipeline.data.stage import load_stage
    from pipeline.device.stage import bench_stage
    from pipeline.evaluate.stage import evaluate_variants
    from pipeline.evaluate.subgroups import point_worst_group
    from pipeline.release import artifacts, manifest
    from pipeline.release.variants import make_variants

    clock = StageClock(lambda _: None)
    loaded = load_stage(config, clock, reference)
    splits, kind = loaded.splits, loaded.kind
    with tempfile.TemporaryDirectory(prefix="bedside-sweep-") as tmp:
        made = make_variants(loaded, config, clock, Path(tmp))
        paths = made.paths
        # the same provenance as a build, so a point's files are byte for byte what the
        # confirming build ships (the embedded manifest holds no output path)
        shown, inputs = provenance or (config, manifest.input_files(config))
        job = jobfile.job_from_config(shown)
        embedded = manifest.embedded_manifest(shown, job, inputs)
        manifest.embed_files(paths, embedded, splits.model_inputs("val")[:32])
        metrics = clock.run(
            "evaluate",
            lambda: evaluate_variants(
                paths, splits, "val", kind, made.quant.output_kind, config, point=made.point
            ),
        )
        bench = bench_stage(paths, config, clock)
        sizes = {
            v.value: {"bytes": p.stat().st_size, "sha256": artifacts.sha256(p)}
            for v, p in paths.items()
        }
    p, q = made.pruned.to_json(), made.quant.to_json()
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


def where_ran(node_id: str | None, seconds: float) -> dict[str, Any]:
    """A point's `node` (Ray node id, None in the local pool, and hostname) and `wall_s`."""
    return {"node": {"id": node_id, "hostname": socket.gethostname()}, "wall_s": seconds}


def run_point(
    config: BuildConfig, reference: str | None, path: str, head: dict[str, Any]
) -> dict[str, Any]:
    """Runs one point and stores it (in a spawned process, or in-process with 1 worker)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    start = time.perf_counter()
    result = evaluate_point(config, Path(reference) if reference else None)
    doc = {**head, **result, **where_ran(None, time.perf_counter() - start)}
    write_json(Path(path), doc)
    return doc


def run_local(
    work: Sequence[LocalWork],
    workers: int,
    finished: Callable[[str, dict[str, Any]], None],
) -> None:
    """Runs the points in this process (1 worker) or in `workers` spawned processes;
    `finished(key, doc)` is called here as each point is stored."""
    if workers == 1:
        for args in work:
            finished(args[3]["key"], run_point(*args))
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(run_point, *args): args[3]["key"] for args in work}
        for future in concurrent.futures.as_completed(futures):
            finished(futures[future], future.result())
