"""Wall time of one `bedside-lite sweep --ray` grid on a Ray cluster of 1, then 2 nodes.

Each node is a `ray start` with one CPU on this machine, all inside a network namespace of
their own holding only loopback (tests/pipeline/ray_cluster.py; needs root, `ip` and
`pip install '.[cluster]'`). The grid: the BreastMNIST CNN of bench/workloads.py (trained
once, fixed seed), sparsity 0.5, 0.7, 0.8 x schedule oneshot, polynomial, fine-tuned
5 epochs, calibration 200, no latency bench (parallel points would disturb it). Each
cluster size runs the whole grid into a fresh sweep dir; the time is the driver's, from
start to exit, confirming build included. Prints a markdown table.

    PYTHONPATH=. python bench/sweep_ray.py [--nodes 1,2] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GRID = ["--sparsity", "0.5,0.7,0.8", "--prune-schedule", "oneshot,polynomial"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,2", help="cluster sizes to time")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from bench import workloads
    from tests.pipeline import ray_cluster

    reason = ray_cluster.unavailable()
    if reason is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bedside-sweep-ray-"))
    workload = workloads.prepare("breastmnist_cnn", work / "model")
    if workload is None:
        print(f"cannot run: BreastMNIST not found at {workloads.BREASTMNIST}", file=sys.stderr)
        return 2
    job = work / "job.toml"
    job.write_text(
        f'[model]\npath = "{workload.model}"\npositive_class = {workload.positive_class}\n'
        f'[data]\npath = "{workload.data}"\n'
        f"[prune]\nfinetune_epochs = {workload.finetune_epochs}\n"
        "[bench]\nenabled = false\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""}
    results = []
    for nodes in (int(n) for n in args.nodes.split(",")):
        cluster = ray_cluster.start(workers=nodes - 1)
        try:
            out = work / f"sweep-{nodes}"
            argv = ["sweep", "--config", str(job), "--out", str(out), *GRID, "--quiet"]
            start = time.perf_counter()
            run = cluster.run(
                [sys.executable, "-m", "pipeline", *argv, "--ray", cluster.address],
                timeout=3600,
                env=env,
            )
            seconds = time.perf_counter() - start
        finally:
            cluster.stop()
        if not (out / "sweep.json").is_file():
            print(f"the sweep on {nodes} node(s) failed:\n{run.stderr[-3000:]}", file=sys.stderr)
            return 1
        summary = json.loads((out / "sweep.json").read_text())
        points = summary["points"]
        results.append(
            {
                "nodes": nodes,
                "exit": run.returncode,
                "wall_s": round(seconds, 1),
                "points": len(points),
                "failed": len(summary["failed"]),
                "nodes_used": len({p["node"]["id"] for p in points}),
                "point_wall_s_sum": round(sum(p["wall_s"] for p in points), 1),
                "auroc_int8": [p["metrics"]["int8"]["auroc"] for p in points],
            }
        )
        print(json.dumps(results[-1]), flush=True)
    print("\n| nodes (1 CPU each) | points | nodes used | sweep wall s | sum of point wall s |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['nodes']} | {r['points']} | {r['nodes_used']} | {r['wall_s']} "
            f"| {r['point_wall_s_sum']} |"
        )
    if len(results) == 2 and results[0]["auroc_int8"] == results[1]["auroc_int8"]:
        print("\nsame int8 AUROC for every point on both cluster sizes")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
