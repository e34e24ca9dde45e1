"""Inputs shared by the release tests (job file, gates, manifest, report, sweep).

A tiny MLP is trained once on the embedded WDBC data and saved with its standardised
features; builds of it are cached for the session per argument list, so the test modules
share a handful of builds instead of running one each. Functions, not fixtures: a cache
here spans modules, a module's fixture would not.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@functools.cache
def tiny_inputs(root: Path) -> tuple[Path, Path]:
    """(model.keras, data.npz): a 30-16-1 MLP and the standardised WDBC features."""
    import keras
    from sklearn.datasets import load_breast_cancer

    from tests import models

    keras.utils.set_random_seed(0)
    ds = load_breast_cancer()
    x = ds.data.astype(np.float32)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = ds.target.astype(np.int64)
    model = models.mlp(units=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    model.fit(x, y.astype(np.float32), epochs=15, batch_size=64, verbose=0)
    root.mkdir(parents=True, exist_ok=True)
    model_path, data_path = root / "tiny.keras", root / "wdbc_std.npz"
    model.save(model_path)
    np.savez(data_path, x=x, y=y)
    return model_path, data_path


@dataclass(frozen=True)
class Run:
    """A finished `bedside-lite` invocation."""

    code: int
    stdout: str
    stderr: str


def run_cli(argv: list[str]) -> Run:
    """`main(argv)` with its Python-level stdout and stderr captured."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return Run(code, out.getvalue(), err.getvalue())


@functools.cache
def cached_run(argv: tuple[str, ...]) -> Run:
    """`run_cli`, once per argument list for the whole session."""
    return run_cli(list(argv))


BASELINE_INT8_BYTES = 1000  # far below any real int8 file: the size-growth gate must fail


@functools.cache
def release_job(root: Path) -> Path:
    """A job file for the tiny model with gates, one of which (size) must fail, and a
    doctored baseline whose int8 model was much smaller."""
    import json

    model, data = tiny_inputs(root / "inputs")
    baseline = root / "baseline_report.json"
    baseline.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "artifacts": {"int8": {"bytes": BASELINE_INT8_BYTES}},
                "metrics": {"int8": {"auroc": 0.5, "sensitivity": 0.5}},
                "bench": {},
            }
        )
    )
    job = root / "job.toml"
    job.write_text(
        "[model]\n"
        f'path = "{model}"\n'
        "seed = 0\n"
        "[data]\n"
        f'path = "{data}"\n'
        "[prune]\n"
        "sparsity = 0.3\n"
        "[quantize]\n"
        "calibration_samples = 64\n"
        "[bench]\n"
        "enabled = false\n"
        "[export]\n"
        f'out = "{root / "never_used"}"\n'
        "[gates]\n"
        "max_auroc_drop = 0.05\n"
        "max_int8_bytes = 100\n"
        "max_size_growth_pct = 10.0\n"
        f'baseline = "{baseline}"\n'
    )
    return job


def release_build(root: Path, name: str) -> tuple[Path, Run]:
    """The release job built into `root/name`, with --sparsity 0.5 overriding the file's
    0.3 and --html; cached per name (two names: two identical builds)."""
    job = release_job(root)
    out = root / name
    run = cached_run(
        ("build", "--config", str(job), "--out", str(out), "--sparsity", "0.5", "--html", "--quiet")
    )
    return out, run
