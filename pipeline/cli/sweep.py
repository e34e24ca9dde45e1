"""The `sweep` command: a grid of builds, its Pareto front and the recommendation."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.cli.console import gate_failures, run_with_progress
from pipeline.cli.options import build_defaults, config_from_args, explicit_options, job_config
from pipeline.config.options import for_command


def run_sweep(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`sweep`: the grid, its Pareto front and the confirmed recommendation."""
    from pipeline.config import SweepOptions, jobfile
    from pipeline.release import sweep
    from pipeline.release.sweep_points import Grid

    job_file = jobfile.load(args.config) if args.config is not None else None
    passed = explicit_options(argv, "sweep")
    own = {o.name: passed.pop(o.dest, None) for o in jobfile.SWEEP_KEYS.values()}
    for option in for_command("sweep"):
        if not option.section and option.kind != "gate":
            passed.pop(option.dest, None)  # how it prints, not what it builds
    options = jobfile.resolve(build_defaults(), passed, job_file)
    base_config = config_from_args(options)
    base_job = jobfile.job_from_config(base_config)
    file_sweep = job_file.sweep if job_file is not None else {}

    def setting(name: str) -> Any:
        """A [sweep] value: the flag, else the job file's, else the registry default."""
        default = jobfile.SWEEP_KEYS[name].default
        if name in ("point_cpus", "ray_retries"):  # 0 is a value
            value = own[name] if own[name] is not None else file_sweep.get(name)
            return default if value is None else value
        return own[name] or file_sweep.get(name) or default

    grid = Grid(**{f.name: tuple(setting(f.name) or ()) for f in dataclasses.fields(Grid)})
    sweep_options = SweepOptions(
        out=setting("out"),
        workers=setting("workers"),
        prefer=setting("prefer"),
        ray=setting("ray"),
        point_cpus=setting("point_cpus"),
        ray_retries=setting("ray_retries"),
    )
    from pipeline.release import mlflow_log

    mlflow_log.preflight(base_config.release)  # before any point runs
    summary = run_with_progress(
        args.quiet,
        args.debug,
        lambda progress: sweep.run(base_job, grid, sweep_options, job_config, progress),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        _print_sweep(summary, sweep_options.out)
    if base_config.release.mlflow_uri is not None:  # a parent run, a child per point
        published = mlflow_log.publish_sweep(
            base_config.release, summary, sweep_options.out, base_job
        )
        print(f"mlflow: {published.note}", file=sys.stderr)
    rec = summary["recommended"]
    if summary["failed"]:
        print(
            f"failed: {len(summary['failed'])} of {len(summary['failed']) + len(summary['points'])}"
            " sweep points did not finish ("
            + "; ".join(f"{f['key']}: {f['error']}" for f in summary["failed"])
            + "); run the same command again to retry them",
            file=sys.stderr,
        )
        return 1
    if rec is None:
        print(
            "failed: no sweep point passes the gates on the validation split; see "
            f"{sweep_options.out / sweep.SWEEP_MD}",
            file=sys.stderr,
        )
        return 1
    return gate_failures({"checks": rec["failed_gates"]})


def _print_sweep(summary: Mapping[str, Any], out: Path) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from pipeline.release.sweep_points import int8_metrics, int8_p50, label

    table = Table(
        title="bedside-lite sweep (validation split)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    for column in ("point", "int8 KB", "AUROC", "sens", "spec", "p50 ms", "gates", ""):
        table.add_column(column, justify="left" if column == "point" else "right")
    rec = summary["recommended"]
    for d in summary["points"]:
        m, p50 = int8_metrics(d), int8_p50(d)
        mark = ("recommended" if rec and rec["key"] == d["key"] else "") + (
            " pareto" if d["pareto"] else ""
        )
        table.add_row(
            label(d["params"]),
            f"{d['artifacts']['int8']['bytes'] / 1024:.1f}",
            "-" if m.auroc is None else f"{m.auroc:.4f}",
            "-" if m.sensitivity is None else f"{m.sensitivity:.3f}",
            "-" if m.specificity is None else f"{m.specificity:.3f}",
            "-" if p50 is None else f"{p50:.4f}",
            "pass" if d["gates"]["passed"] else "FAIL",
            mark.strip(),
        )
    console = Console(width=max(Console().width, 100))
    console.print(table)
    if rec is not None:
        auroc = rec["test"]["auroc"]
        console.print(
            f"recommended {rec['key']}: test AUROC "
            f"{'-' if auroc is None else format(auroc, '.4f')}, gates "
            f"{'passed' if rec['gates_passed'] else 'FAILED'}; build in {rec['out']}/"
        )
    console.print(f"sweep in {out}/ (sweep.md, sweep.json)")
